"""The pack's own socket types and the shared account input."""

from comfy_api.latest import io

RH_OVERRIDES = io.Custom("RH_OVERRIDES")
RH_TASK = io.Custom("RH_TASK")

CATEGORY = "RunningHub"


def account_input() -> io.String.Input:
    return io.String.Input(
        "account", default="default",
        tooltip="Name of the key profile to use (set keys in Settings → RunningHub, or the "
                "RUNNINGHUB_API_KEY environment variable for 'default'). Only the name is saved in the "
                "workflow, never a key.")

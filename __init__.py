"""RunningHub Bridge: run RunningHub cloud workflows from a local ComfyUI.

ComfyUI imports this file under a mangled module name, so everything inside the pack is
imported relatively. Importing it is cheap: the node classes (and torch-heavy helpers)
load only when ComfyUI asks for the node list.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: returns the extension that lists the pack's nodes."""
    from .nodes import RunningHubExtension

    return RunningHubExtension()

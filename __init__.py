"""RunningHub Bridge: run RunningHub cloud workflows from a local ComfyUI.

ComfyUI imports this file under a mangled module name, so everything inside the pack is
imported relatively. Importing it is cheap: the node classes (and torch-heavy helpers)
load only when ComfyUI asks for the node list.
"""

import logging
import re

WEB_DIRECTORY = "./web"
MIN_COMFYUI = (0, 3, 75)  # pyproject.toml's requires-comfyui


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: returns the extension that lists the pack's nodes."""
    from .nodes import RunningHubExtension

    return RunningHubExtension()


def _say_if_comfyui_is_too_old() -> None:
    """A ComfyUI older than MIN_COMFYUI either skips the pack with nothing but "lack of
    NODE_CLASS_MAPPINGS" in its log (no V3 entry point yet) or lacks parts of the node API
    the nodes use: its log says instead what the user must do."""
    try:
        from comfyui_version import __version__ as version
    except ImportError:  # not inside ComfyUI (scripts, tests) or a ComfyUI without the file
        return
    found = tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])
    if found and found < MIN_COMFYUI:
        logging.getLogger("runninghub_bridge").error(
            "RunningHub Bridge needs ComfyUI %s or newer, and this ComfyUI is %s: its RH nodes will not load or "
            "not work. Update ComfyUI (ComfyUI-Manager: 'Update ComfyUI', or 'git pull' in the ComfyUI folder) "
            "and restart it.", ".".join(map(str, MIN_COMFYUI)), version)


_say_if_comfyui_is_too_old()

"""ComfyUI node classes of the pack (V3 schema) and the extension that registers them."""

from comfy_api.latest import ComfyExtension, io

from .fetch_outputs import RHFetchOutputs
from .override import RHNodeOverride
from .run_workflow import RHRunWorkflow
from .upload import RHUpload

NODES: list[type[io.ComfyNode]] = [RHUpload, RHNodeOverride, RHRunWorkflow, RHFetchOutputs]


class RunningHubExtension(ComfyExtension):
    """Lists every node of the pack; the one registration table."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)

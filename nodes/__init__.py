"""ComfyUI node classes of the pack (V3 schema) and the extension that registers them."""

from comfy_api.latest import ComfyExtension, io

from .fetch_outputs import RHFetchOutputs
from .override import RHNodeOverride
from .remote_group import RHRemoteGroup
from .run_workflow import RHRunWorkflow
from .upload import RHUpload

NODES: list[type[io.ComfyNode]] = [RHUpload, RHNodeOverride, RHRunWorkflow, RHFetchOutputs, RHRemoteGroup]


class RunningHubExtension(ComfyExtension):
    """Lists every node of the pack; the one registration table."""

    async def on_load(self) -> None:
        """Registers the pack's HTTP routes (settings dialog, field picker) and its
        shutdown handler (cancels the remote tasks on Ctrl+C / SIGTERM); idempotent."""
        from ..host import shutdown
        from ..host.routes import register_routes

        register_routes()
        shutdown.install()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.75 never calls on_load; 0.33.0 calls it just before this. Registering here
        # too covers both, and register_routes adds the routes once either way (the e2e route
        # tests run on both hosts; a second registration would stop ComfyUI's web server).
        await self.on_load()
        return list(NODES)

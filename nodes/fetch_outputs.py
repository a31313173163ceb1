"""RH Fetch Outputs: download a task's results as IMAGE / MASK / VIDEO / AUDIO / text."""

from __future__ import annotations

import asyncio
import os

from comfy_api.latest import io

from ..client.errors import WaitInterrupted
from ..host import accounts, comfy, tasks
from ..remote.fetch import Downloaded, FetchedOutputs, fetch_outputs
from ..remote.status import RunStatus
from .sockets import CATEGORY, RH_TASK, account_input
from .sweep import NodeStop

SIZE_POLICIES = ["pad", "fit", "stretch", "error"]


def _fetch(task, acct, task_id: str, size_policy: str, should_stop, on_progress) -> FetchedOutputs:
    """Worker thread: the outputs of the wired `task`, or of `task_id` with the key of the
    account that created it (a pool may ask its keys: under the node's stop, off the loop)."""
    if task is not None:
        client, result = task.client, task.result
    else:
        client, result = tasks.client_for_task(acct, task_id), None
    return fetch_outputs(client, task_id, result, new_temp_file=comfy.new_temp_file, size_policy=size_policy,
                         should_stop=should_stop, on_progress=on_progress)


def _temp_entry(it: Downloaded, default_ext: str) -> dict:
    """A fetched file written to ComfyUI's temp folder, as a preview entry."""
    ext = {"jpeg": "jpg"}.get(it.output.file_type, it.output.file_type or default_ext)
    path = comfy.new_temp_file("." + ext)
    with open(path, "wb") as fh:
        fh.write(it.data)
    return {"filename": os.path.basename(path), "subfolder": "runninghub", "type": "temp"}


def _preview_entries(fetched: FetchedOutputs) -> dict:
    """Files in ComfyUI's temp folder for the node's preview: the images, else the first
    video; and the audio, as fetched (the front end shows a player, as for Preview Audio)."""
    ui: dict = {}
    entries = [_temp_entry(it, "png") for it in fetched.image_files]
    if entries:
        ui["images"] = entries
    elif fetched.videos:
        path = fetched.videos[0].path
        ui["images"] = [{"filename": os.path.basename(path), "subfolder": "runninghub", "type": "temp"}]
        ui["animated"] = [True]
    if fetched.audio_file is not None:
        ui["audio"] = [_temp_entry(fetched.audio_file, "flac")]
    ui["text"] = [fetched.summary()]
    return ui


class RHFetchOutputs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RHFetchOutputs",
            display_name="RH Fetch Outputs",
            category=CATEGORY,
            description=("Downloads a RunningHub task's outputs and turns them into images (with masks from "
                         "alpha), video, audio and text. Given only a task_id it re-attaches to an earlier "
                         "task (it waits if it is still running) without running anything again."),
            inputs=[
                RH_TASK.Input("task", optional=True, tooltip="The task from RH Run Workflow."),
                io.String.Input("task_id", default="", optional=True,
                                tooltip="Or: the id of an earlier task to re-attach to (used when task is "
                                        "not wired)."),
                account_input(),
                io.Combo.Input("size_policy", options=SIZE_POLICIES, default="pad",
                               tooltip="When output images differ in size: 'pad' places each on the largest "
                                       "canvas (padding masked), 'fit' scales into the first image's size "
                                       "keeping aspect ratio (padding masked), 'stretch' resizes to the first "
                                       "image's size (distorts), 'error' stops."),
            ],
            outputs=[
                io.Image.Output("images", display_name="images", tooltip="All output images as one batch."),
                io.Mask.Output("masks", display_name="masks",
                               tooltip="1 - alpha of each image (and the padding), as ComfyUI's Load Image does."),
                io.Video.Output("video", display_name="video", tooltip="The first output video."),
                io.Audio.Output("audio", display_name="audio", tooltip="The first output audio."),
                io.String.Output("text", display_name="text", tooltip="Text outputs, joined by blank lines."),
                io.String.Output("urls", display_name="urls",
                                 tooltip="Every output as 'remote node id, file type, URL' (one per line). "
                                         "URLs expire after about a day."),
            ],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    async def execute(cls, task=None, task_id: str = "", account: str = "default",
                      size_policy: str = "pad") -> io.NodeOutput:
        node_id = cls.hidden.unique_id
        tid = task.task_id if task is not None else str(task_id or "").strip()
        if not tid:
            raise ValueError("RH Fetch Outputs: wire a task from RH Run Workflow, or enter a task_id to "
                             "re-attach to.")
        acct = accounts.account_for(account) if task is None else None

        prompt_id, _ = comfy.executing_context()

        def show(status: RunStatus) -> None:
            comfy.send_status(node_id, status, prompt_id=prompt_id)

        stop = NodeStop(prompt_id, show=show)

        show(RunStatus("FETCHING", f"Fetching outputs of task {tid}…", task_id=tid))
        try:
            fetched = await stop.run(f"RH Fetch Outputs {node_id}", _fetch, task, acct, tid, size_policy,
                                     stop.should_stop, lambda p: show(RunStatus.of_progress(p)))
        except WaitInterrupted as exc:
            show(RunStatus("CANCEL", str(exc), task_id=tid))  # what became of the task
            comfy.raise_interrupt()
            raise
        show(RunStatus("FETCHED", fetched.summary(), task_id=tid))
        missing = f"RunningHub {fetched.summary()}: "
        images = fetched.images.image if fetched.images is not None else comfy.execution_blocker(
            missing + "no image output to pass on.")
        masks = fetched.images.mask if fetched.images is not None else comfy.execution_blocker(
            missing + "no image output, so no mask.")
        video = comfy.video_from_file(fetched.videos[0].path) if fetched.videos else comfy.execution_blocker(
            missing + "no video output to pass on.")
        audio = fetched.audio if fetched.audio is not None else comfy.execution_blocker(
            missing + "no audio output to pass on.")
        text = "\n\n".join(fetched.texts)
        urls = "\n".join(fetched.listing)
        ui = await asyncio.to_thread(_preview_entries, fetched)
        return io.NodeOutput(images, masks, video, audio, text, urls, ui=ui)

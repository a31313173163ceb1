"""Stopping one native prompt: an interrupt when it runs, a queue delete when it is still
queued, nothing when it already ended (the run's cancel and the task panel's)."""

from __future__ import annotations

import logging
from typing import NamedTuple

from ..client.errors import RunningHubError
from ..client.native import NativeClient, Place
from ..client.stop import shielded

log = logging.getLogger("runninghub_bridge.remote")




class Stopped(NamedTuple):
    text: str  # what was done
    stopped: bool  # this call stopped it (False: it had already ended, or the remote does not know it)


def stop_prompt(native: NativeClient, prompt_id: str, *, assumed: Place = Place.RUNNING) -> Stopped:
    """Stop one prompt with as few calls as it takes: one interrupt when it runs, one queue
    delete when it is still queued (and the interrupt after all when it started meanwhile,
    or when the remote cannot say whether it did), nothing when it already ended. `assumed`
    is where it is when the remote cannot say. RunningHubError when a call failed. Not
    stopped by the run's stop (the task panel's cancel can use it too)."""
    with shielded():
        try:
            place = native.find(prompt_id).place
        except RunningHubError as exc:
            log.info("prompt %s: where it is is unknown (%s); stopping it as %s", prompt_id, type(exc).__name__,
                     assumed.value.lower())
            place = assumed
        if place is Place.QUEUED:
            native.delete(prompt_id)
            try:
                place = native.find(prompt_id).place  # it may have started meanwhile
            except RunningHubError as exc:
                log.info("prompt %s: unknown whether it started before its delete (%s); interrupting it too",
                         prompt_id, type(exc).__name__)
                place = Place.RUNNING  # an interrupt of a prompt that is not running does nothing
            if place is not Place.RUNNING:
                return Stopped(f"RunningHub prompt {prompt_id} was taken off the remote queue before it ran.", True)
        if place is Place.RUNNING:
            native.interrupt(prompt_id)
            return Stopped(f"RunningHub prompt {prompt_id} was interrupted on the remote ComfyUI.", True)
    return Stopped(f"RunningHub prompt {prompt_id} had already ended.", False)

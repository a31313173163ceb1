"""Test nodes for the ComfyUI behind the native relay (copied into its custom_nodes): one
that takes steps with a progress bar (progress events, a prompt to interrupt), one that
fails (an execution_error naming it), and a gate that runs until the test opens it (a
prompt that is surely still running whenever the test acts on it)."""

import os
import time

import comfy.model_management
import comfy.utils


class RHTestSteps:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "steps": ("INT", {"default": 5, "min": 1, "max": 10000}),
                             "seconds": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 10.0, "step": 0.01})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, image, steps, seconds):
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(seconds)
            bar.update(1)
        return (image,)


class RHTestFail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, image):
        raise RuntimeError("deliberate failure of the native endpoint test")


class RHTestGate:
    """Passes its image through once the file `path` exists: it first creates `path`.started
    (the prompt is running on the remote now), then waits, interruptible, for the test to
    create `path`; after `timeout` seconds it fails instead."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "path": ("STRING", {"default": ""}),
                             "timeout": ("FLOAT", {"default": 60.0, "min": 0.0, "max": 600.0, "step": 0.1})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, image, path, timeout):
        with open(path + ".started", "a"):
            pass
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test never opened the gate {path} ({timeout:g} s)")
            time.sleep(0.02)
        return (image,)


NODE_CLASS_MAPPINGS = {"RHTestSteps": RHTestSteps, "RHTestFail": RHTestFail, "RHTestGate": RHTestGate}

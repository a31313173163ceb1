"""Two test nodes for the ComfyUI behind the native relay (copied into its custom_nodes):
one that takes steps with a progress bar (progress events, a prompt to interrupt), one
that fails (an execution_error naming it)."""

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


NODE_CLASS_MAPPINGS = {"RHTestSteps": RHTestSteps, "RHTestFail": RHTestFail}

"""Executors run an overridden API-format graph and return the files it saved.

- `builtin.BuiltinExecutor`: a handful of core ComfyUI node types done with Pillow/numpy/av.
- `comfyui.ComfyUIExecutor`: forwards the graph to a real ComfyUI server.
"""

from .base import Executor, NodeFailure, OutputFile, PromptInvalid, RunContext

__all__ = ["Executor", "NodeFailure", "OutputFile", "PromptInvalid", "RunContext"]

"""Helpers shared by the test suites (simulator, ComfyUI host, pack loader)."""

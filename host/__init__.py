"""The only code that touches ComfyUI's runtime modules (progress, interrupt, folders,
server messages, VIDEO values). Everything below it runs without ComfyUI."""

"""What the nodes do, without ComfyUI: upload media, run a workflow and wait, fetch and
decode outputs. Combines the client and media layers; ComfyUI-specific callbacks (interrupt,
status, temp files) are passed in."""

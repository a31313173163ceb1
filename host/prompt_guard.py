"""Refuses a prompt holding the pack's nodes when another web page queues it.

ComfyUI's own `POST /prompt` runs whatever it is sent. Its origin check covers a page
posting to `127.0.0.1` or `localhost`, but not `Origin: null` (a sandboxed frame, a local
file), an address it does not count as loopback (`0.0.0.0`, `[::ffff:7f00:1]`, a LAN
address) or a rebinding name: from there any web page the user visits could queue RH Run
Workflow or RH Remote Group and spend the user's coins with the stored key. The pack
cannot change ComfyUI's route, but it can add a middleware for that one case: a `POST
/prompt` sent by a browser (it names its page in `Origin` or `Sec-Fetch-Site`) from
anywhere but ComfyUI's own page (host_guard's Host and Origin rules) answers 403 when the
prompt holds one of the pack's nodes. Prompts without them, scripts (no such headers) and
ComfyUI's own page are left to ComfyUI as before.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import host_guard

log = logging.getLogger("runninghub_bridge.host")

#: The pack's node ids (nodes/__init__.py NODES; a test keeps the two the same).
PACK_NODES = frozenset({"RHUpload", "RHNodeOverride", "RHRunWorkflow", "RHFetchOutputs", "RHRemoteGroup"})
PROMPT_PATHS = frozenset({"/prompt", "/api/prompt"})


def refusal(headers: Any) -> str | None:
    """None for a request a browser did not send, or sent from ComfyUI's own page; else why
    it is refused."""
    origin, fetch_site, host = headers.get("Origin"), headers.get("Sec-Fetch-Site"), headers.get("Host")
    if origin is None and fetch_site is None:
        return None  # a script, not a page
    return host_guard.refusal(host) or host_guard.origin_refusal(origin, fetch_site, host)


def holds_pack_nodes(body: bytes) -> bool:
    try:
        prompt = json.loads(body).get("prompt")
    except (ValueError, RecursionError, AttributeError):
        return False  # not a prompt ComfyUI would run: its own route answers
    return isinstance(prompt, dict) and any(isinstance(node, dict) and node.get("class_type") in PACK_NODES
                                            for node in prompt.values())


def middleware():
    from aiohttp import web

    @web.middleware
    async def refuse_pack_prompts_from_other_pages(request, handler):
        if request.method == "POST" and request.path in PROMPT_PATHS:
            message = refusal(request.headers)
            if message is not None and holds_pack_nodes(await request.read()):
                log.warning("a prompt with RunningHub nodes was refused: %s", message)
                return web.json_response({"error": {"type": "runninghub_prompt_refused", "message": message,
                                                    "details": "", "extra_info": {}}, "node_errors": {}}, status=403)
        return await handler(request)

    return refuse_pack_prompts_from_other_pages

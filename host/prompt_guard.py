"""Refuses a prompt holding the pack's nodes when another web page queues it.

ComfyUI's own `POST /prompt` runs whatever it is sent. Its origin check covers a page
posting to `127.0.0.1` or `localhost`, but not `Origin: null` (a sandboxed frame, a local
file), an address it does not count as loopback (`0.0.0.0`, `[::ffff:7f00:1]`, a LAN
address) or a rebinding name: from there any web page the user visits could queue RH Run
Workflow or RH Remote Group and spend the user's coins with the stored key. The pack
cannot change ComfyUI's route, but it can add a middleware for that one case: a `POST
/prompt` sent by a browser (it names its page in `Origin` or `Sec-Fetch-Site`) from
anywhere but ComfyUI's own page (host_guard's Host and Origin rules) answers 403 when the
prompt holds one of the pack's nodes, read as ComfyUI reads it (the charset the request
names), or when it cannot be read so. Prompts without them, scripts (no such headers) and
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


def may_hold_pack_nodes(text: str | None) -> bool:
    """Whether the body, as ComfyUI reads it (`text`: decoded with the charset the request
    names, None when that fails), may queue one of the pack's nodes. Anything it cannot
    judge counts as yes: a page must not get past the check by writing the body in a way
    only ComfyUI reads (a charset, a class_type that is not a string)."""
    if text is None:
        return True
    try:
        prompt = json.loads(text).get("prompt")
    except (ValueError, RecursionError, AttributeError):
        return True
    if not isinstance(prompt, dict):
        return False  # ComfyUI runs nothing: it answers "no prompt" itself
    return any(not isinstance(node, dict) or not isinstance(node.get("class_type"), str)
               or node["class_type"] in PACK_NODES for node in prompt.values())


async def _as_comfyui_reads_it(request) -> str | None:
    try:
        return await request.text()  # what ComfyUI's `await request.json()` decodes
    except (UnicodeDecodeError, LookupError):
        return None


def middleware():
    from aiohttp import web

    @web.middleware
    async def refuse_pack_prompts_from_other_pages(request, handler):
        if request.method == "POST" and request.path in PROMPT_PATHS:
            message = refusal(request.headers)
            if message is not None and may_hold_pack_nodes(await _as_comfyui_reads_it(request)):
                log.warning("a prompt with RunningHub nodes was refused: %s", message)
                return web.json_response({"error": {"type": "runninghub_prompt_refused", "message": message,
                                                    "details": "", "extra_info": {}}, "node_errors": {}}, status=403)
        return await handler(request)

    return refuse_pack_prompts_from_other_pages

"""A raw websocket reader for the conformance tests (websocket-client; shares no code with the
simulator or the pack)."""

from __future__ import annotations

import json

import websocket

from support.simulator import Simulator


def ws_url(sim: Simulator, client_id: str) -> str:
    return sim.base_url.replace("http://", "ws://", 1) + f"/ws?clientId={client_id}"


def read_one(socket: websocket.WebSocket) -> dict:
    return json.loads(socket.recv())


def read_until_done(socket: websocket.WebSocket, limit: int = 500) -> list[dict]:
    """Messages up to and including `executing` with node null (the end of a prompt)."""
    messages: list[dict] = []
    while len(messages) < limit:
        msg = read_one(socket)
        messages.append(msg)
        if msg["type"] == "executing" and msg["data"]["node"] is None:
            return messages
    raise AssertionError(f"no end of prompt in {limit} messages: {[m['type'] for m in messages]}")


def kinds(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]

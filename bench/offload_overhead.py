"""offload_overhead: a small subgraph (LoadImage → ImageScale → ImageInvert → ImageBlur →
SaveImage) run "on RunningHub" — through the simulator's native ComfyUI endpoint
`/proxy/{key}/…` to a second, plain ComfyUI 0.3.75 — against the floor of the same subgraph
queued directly on that second ComfyUI.

The floor is the faster (by median) of two bare scripts, each making the plain calls back
to back on the second ComfyUI: PNG encode, upload (`/upload/image`), `POST /prompt`, then
either `GET /history/<id>` every 20 ms until the prompt is done (`poll`) or, with the
prompt's `/ws` opened first, its `executing` null and one `GET /history/<id>` (`ws`), then
the output's download (`/view`) and decode. On a quiet machine `ws` is the faster one
(about 85 ms against 91); on a busy one they are even (the socket's messages cost the remote
what the polls save). Medians of `--repeat` fresh images each (a new file name every run:
ComfyUI caches node outputs by their inputs), floor and measured runs interleaved.

`--via proxy` measures the simulator's proxy relay alone (key check, slot, billing,
client_id rewriting, filtered history, /view ownership: the floor's layout through
`/proxy/{key}`); `--via pack` the issue's measurement (the one `run_all.py` runs): the pack's
*RH Remote Group* node running the same subgraph as a group of a first ComfyUI's graph
(`pack_once`), relay included. Beside its ratio (against the direct floor, the target's) it
prints `ratio_same_relay`: the pack against the `ws` script sent through the same relay,
measured on the same images, i.e. what the pack's own machinery costs over a bare script
when both pay the simulated service's hop.

Run: `scripts/run-in-venv.sh python bench/offload_overhead.py [--repeat 7] [--via proxy|pack]`
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import time
from contextlib import nullcontext

import numpy as np
import requests
import websocket
from PIL import Image

from common import ComfyHost, Simulator, bench_line, comfy_with_pack, event_time, median, table
from support.pack import pack_module  # noqa: E402 (common puts tests/ on sys.path)
from png_encode import photo_like

TARGET = "ratio<=1.2"
SIZE = 512
POLL_GAP = 0.02  # both sides poll /history this often


def png(pixels: np.ndarray) -> bytes:
    """The bare scripts encode with the pack's own PNG writer (media/image_encode.encode_png:
    level 1, faster than Pillow's), the best a script can do: the ratio then measures the
    offload's machinery, not which encoder is faster."""
    return pack_module("media.image_encode").encode_png(pixels)


def subgraph(image_name: str, prefix: str) -> dict:
    """The group: LoadImage → ImageScale (384²) → ImageInvert → ImageBlur → SaveImage."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                     "width": 384, "height": 384, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "ImageBlur", "inputs": {"image": ["3", 0], "blur_radius": 2, "sigma": 1.0}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": prefix}},
    }


def upload_and_submit(session: requests.Session, base: str, pixels: np.ndarray, tag: str) -> tuple[str, float]:
    """PNG encode and upload, then `POST /prompt` of the subgraph as client `tag`: (its
    prompt id, the time the upload ended)."""
    up = session.post(base + "/upload/image", files={"image": (f"offload-{tag}.png", png(pixels), "image/png")},
                      data={"overwrite": "true"}, timeout=60)
    up.raise_for_status()
    uploaded = time.perf_counter()
    reply = session.post(base + "/prompt", json={"prompt": subgraph(up.json()["name"], f"offload-{tag}"),
                                                 "client_id": tag}, timeout=60)
    reply.raise_for_status()
    return reply.json()["prompt_id"], uploaded


def http_once(session: requests.Session, base: str, pixels: np.ndarray) -> dict:
    """Upload, prompt, history polled until done, download: against `base`, which is either
    the second ComfyUI itself (floor) or the simulator's `/proxy/{key}` in front of it."""
    tag = secrets.token_hex(5)
    t0 = time.perf_counter()
    prompt_id, t1 = upload_and_submit(session, base, pixels, tag)
    while True:
        entry = session.get(f"{base}/history/{prompt_id}", timeout=60).json().get(prompt_id)
        if entry and entry["status"].get("completed") is not None:
            break
        time.sleep(POLL_GAP)
    return view_output(session, base, entry, t0, t1)



def view_output(session: requests.Session, base: str, entry: dict, t0: float, t1: float) -> dict:
    """The ended prompt's output image downloaded and decoded; the stages' times from `t0`
    (start) and `t1` (uploaded)."""
    if entry["status"]["status_str"] != "success":
        raise RuntimeError(f"the subgraph failed: {entry['status']}")
    t2 = time.perf_counter()
    (image,) = entry["outputs"]["5"]["images"]
    body = session.get(base + "/view", params=image, timeout=60)
    body.raise_for_status()
    out = np.asarray(Image.open(io.BytesIO(body.content)).convert("RGB"))
    assert out.shape == (384, 384, 3)
    t3 = time.perf_counter()
    return {"total": t3 - t0, "upload": t1 - t0, "prompt": t2 - t1, "view": t3 - t2}

def ws_once(session: requests.Session, base: str, pixels: np.ndarray) -> dict:
    """As http_once, but following the prompt's `/ws` (opened first, as a client must: a
    ComfyUI sends a client's messages only while it is connected) to its `executing` null,
    then reading its history once."""
    tag = secrets.token_hex(5)
    t0 = time.perf_counter()
    ws = websocket.create_connection(base.replace("http", "ws", 1) + f"/ws?clientId={tag}", timeout=60,
                                     sockopt=((6, 1, 1),))  # TCP_NODELAY
    try:
        prompt_id, t1 = upload_and_submit(session, base, pixels, tag)
        while True:
            frame = ws.recv()
            msg = json.loads(frame) if isinstance(frame, str) else {}
            data = msg.get("data") or {}
            if msg.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                break
    finally:
        ws.close()
    entry = session.get(f"{base}/history/{prompt_id}", timeout=60).json()[prompt_id]
    return view_output(session, base, entry, t0, t1)


LAYOUTS = {"poll": http_once, "ws": ws_once}  # the bare scripts; the faster one is the floor

GROUP = {"title": "offload", "node_ids": ["2", "3", "4"], "account": "default"}


def pack_once(host: ComfyHost, pixels: np.ndarray) -> dict:
    """The same subgraph from a first ComfyUI with the pack: LoadImage and SaveImage local,
    nodes 2–4 a group converted by POST /runninghub/group/convert and run by RH Remote Group.
    Stages from the node's status events: `upload` (PNG encode, the object_info check,
    upload, to the first event naming the remote prompt), `prompt` (from there to the node's
    SUCCESS: the remote run, and the download and decode, which overlap its end), `view`
    (from SUCCESS until ComfyUI moved on); `total` from its `executing` to the local
    SaveImage's. Only `total` compares like with like."""
    tag = secrets.token_hex(5)
    name = host.upload_image(png(pixels), f"offload-{tag}.png")["name"]
    reply = host.post("/runninghub/group/convert", json={"prompt": subgraph(name, f"offload-{tag}"), "groups": [GROUP]})
    reply.raise_for_status()
    prompt, gid = reply.json()["prompt"], reply.json()["groups"][0]["node_id"]
    result = host.run(prompt, timeout=300)
    if result.status != "success":
        raise RuntimeError(f"the group failed: {result.error}")
    statuses = [e for e in result.events if e.type == "runninghub.status" and e.data.get("node") == gid]
    start = event_time(result, "executing", gid)
    sent = next(e.t for e in statuses if e.data.get("task_id"))
    done = next(e.t for e in statuses if e.data["state"] == "SUCCESS")
    end = event_time(result, "executing", "5")
    return {"total": end - start, "upload": sent - start, "prompt": done - sent, "view": end - done}


def run(sim: Simulator, remote, repeat: int = 7, via: str = "proxy") -> str:
    """`sim` runs with `--comfyui remote.base_url`; `remote` is the second ComfyUI."""
    with (comfy_with_pack(sim, sim.keys[:1], name="offload-pack") if via == "pack" else nullcontext()) as pack:
        return _run(sim, remote, repeat, via, pack)


def _run(sim: Simulator, remote, repeat: int, via: str, pack: ComfyHost | None) -> str:
    session = requests.Session()
    proxy = sim.proxy_url(sim.keys[0])
    images = [photo_like(SIZE, seed=3000 + i) for i in range(repeat + 1)]

    def measured(pixels) -> dict[str, dict]:
        if via == "pack":  # and, for reference, the `ws` script through the same relay
            return {"pack": pack_once(pack, pixels), "relay_ws": ws_once(session, proxy, pixels)}
        return {name: once(session, proxy, pixels) for name, once in LAYOUTS.items()}

    for once in LAYOUTS.values():  # warm-up: imports, first model-free run, pools
        once(session, remote.base_url, images[0])
    measured(photo_like(SIZE, seed=2999))
    floors: dict[str, list[dict]] = {name: [] for name in LAYOUTS}
    values: dict[str, list[dict]] = {}
    for pixels in images[1:]:
        for name, once in LAYOUTS.items():
            floors[name].append(once(session, remote.base_url, pixels))
        for name, run in measured(pixels).items():
            values.setdefault(name, []).append(run)
    layout = min(floors, key=lambda name: median(f["total"] for f in floors[name]))
    side = values["pack"] if via == "pack" else values[layout]
    value, floor = median(v["total"] for v in side), median(f["total"] for f in floors[layout])
    billed = [t for t in sim.native_prompts(sim.keys[0]) if t["consumeCoins"]]
    relayed = {}
    if via == "pack":  # the pack against the same relay: what its own machinery costs
        relay_ws = median(v["total"] for v in values["relay_ws"])
        relayed = {"relay_ws": relay_ws, "ratio_same_relay": round(value / relay_ws, 3)}
    line = bench_line("offload_overhead", value, floor, TARGET, runs=repeat, via=via, billed=len(billed),
                      floor_layout=layout, floor_poll=median(f["total"] for f in floors["poll"]),
                      floor_ws=median(f["total"] for f in floors["ws"]), **relayed)
    columns = {"direct poll s": floors["poll"], "direct ws s": floors["ws"], f"{via} s": side}
    if via == "pack":
        columns["relay ws s"] = values["relay_ws"]
    table(["stage", *columns], [[stage, *(median(run[stage] for run in runs) for runs in columns.values())]
                                for stage in ("upload", "prompt", "view", "total")])
    return line


def run_own(repeat: int = 7, via: str = "proxy") -> str:
    """With a second ComfyUI and a simulator in front of it of its own (run_all.py)."""
    with ComfyHost(with_pack=False, name="offload-remote") as remote, \
            Simulator(key_count=1, concurrency=2, comfyui_url=remote.base_url) as sim:
        return run(sim, remote, repeat, via)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--via", choices=["proxy", "pack"], default="proxy")
    args = parser.parse_args()
    run_own(args.repeat, args.via)


if __name__ == "__main__":
    main()

"""`make demo`: run the example graph headless through a local ComfyUI and keep the results.

Without RUNNINGHUB_API_KEY it starts the local RunningHub simulator (rhsim) with the demo's
remote workflow (demo/remote_workflows), so the whole chain runs on this machine:
  LoadImage → RH Upload → RH Node Override → RH Run Workflow → RH Fetch Outputs → SaveImage.
With RUNNINGHUB_API_KEY (and RUNNINGHUB_SITE=ai for runninghub.ai keys) it runs the same
graph against the real service; then name the workflow and its Load Image node:
  RH_DEMO_WORKFLOW_ID   id of a workflow of yours whose output is an image (required)
  RH_DEMO_IMAGE_NODE    id of its Load Image node (default 1); RH_DEMO_IMAGE_FIELD (default image)
Either way: RH_DEMO_IMAGE=path picks the input image (default: a generated test card),
RH_DEMO_OUTPUT=folder where the results go (default ./demo_output).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.comfy_host import ComfyHost  # noqa: E402
from support.simulator import Simulator  # noqa: E402

GRAPH = REPO / "demo" / "RunningHub_upload_run_fetch.api.json"
DEMO_WORKFLOW_ID = "1990000000000000001"


def test_card(path: Path) -> None:
    """A colourful 512×512 input made on the spot, so the demo needs no binary files."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:512, 0:512]
    rgb = np.stack([x * 255 // 511, y * 255 // 511, ((x // 64 + y // 64) % 2) * 200 + 40], axis=-1)
    Image.fromarray(rgb.astype("uint8")).save(path)


def main() -> int:
    out_dir = Path(os.environ.get("RH_DEMO_OUTPUT", "demo_output")).resolve()
    real_key = os.environ.get("RUNNINGHUB_API_KEY", "").strip()
    workflow_id = os.environ.get("RH_DEMO_WORKFLOW_ID", "").strip()
    if real_key and not workflow_id:
        print("RUNNINGHUB_API_KEY is set, so the demo runs against RunningHub: set RH_DEMO_WORKFLOW_ID to a "
              "workflow of yours whose output is an image (and RH_DEMO_IMAGE_NODE to its Load Image node id).",
              file=sys.stderr)
        return 2
    graph = json.loads(GRAPH.read_text())
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        if real_key:
            env = {"RUNNINGHUB_API_KEY": real_key}
            for name in ("RUNNINGHUB_SITE", "RUNNINGHUB_BASE_URL"):
                if os.environ.get(name):
                    env[name] = os.environ[name]
            where = "RunningHub"
        else:
            sim = stack.enter_context(Simulator(workflows_dir=REPO / "demo" / "remote_workflows", run_seconds=1.0))
            env = {"RUNNINGHUB_BASE_URL": sim.base_url, "RUNNINGHUB_API_KEY": sim.keys[0]}
            workflow_id = DEMO_WORKFLOW_ID
            where = f"the local simulator at {sim.base_url}"
        print(f"Starting ComfyUI with the pack (remote side: {where})…", flush=True)
        host = stack.enter_context(ComfyHost(with_pack=True, env=env, name="demo"))

        image = Path(os.environ["RH_DEMO_IMAGE"]) if os.environ.get("RH_DEMO_IMAGE") else Path(tmp) / "card.png"
        if not os.environ.get("RH_DEMO_IMAGE"):
            test_card(image)
        name = host.upload_image(image, "rh-demo-input" + image.suffix)["name"]

        nodes = {n["class_type"]: (nid, n) for nid, n in graph.items()}
        nodes["LoadImage"][1]["inputs"]["image"] = name
        nodes["RHRunWorkflow"][1]["inputs"]["workflow_id"] = workflow_id
        override = nodes["RHNodeOverride"][1]["inputs"]
        override["node_id"] = os.environ.get("RH_DEMO_IMAGE_NODE", "1")
        override["field_name"] = os.environ.get("RH_DEMO_IMAGE_FIELD", "image")

        def show(event):
            if event.type == "runninghub.status":
                print("  " + event.data.get("text", ""), flush=True)

        result = host.run(graph, timeout=1800, on_event=show)
        if result.status != "success":
            error = result.error or {}
            print(f"The graph failed at node {error.get('node_type')}: {error.get('exception_message')}",
                  file=sys.stderr)
            return 1
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for info in result.images(nodes["SaveImage"][0]):
            target = out_dir / info["filename"]
            target.write_bytes(host.view_bytes(info["filename"], info["subfolder"], info["type"]))
            written.append(target)
        shutil.copy(image, out_dir / ("input" + image.suffix))
    print(f"Wrote {len(written)} result image(s) to {out_dir}:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

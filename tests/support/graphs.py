"""API-format graphs of the pack's nodes, as a user's front end would queue them."""

from __future__ import annotations

import secrets


def fresh_seed() -> int:
    """A seed no other test used: ComfyUI caches node outputs by inputs across prompts."""
    return secrets.randbelow(2 ** 48)


def upload_run_fetch(image_name: str, workflow_id: str, *, remote_node: str = "1", remote_field: str = "image",
                     seed: int | None = None, account: str = "default", save_prefix: str = "rh") -> dict:
    """LoadImage → RH Upload → RH Node Override → RH Run Workflow → RH Fetch Outputs → SaveImage."""
    return {
        "10": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "11": {"class_type": "RHUpload", "inputs": {"image": ["10", 0], "account": account}},
        "12": {"class_type": "RHNodeOverride",
               "inputs": {"node_id": remote_node, "field_name": remote_field, "value": ["11", 0]}},
        **run_fetch(workflow_id, overrides=["12", 0], seed=seed, account=account, save_prefix=save_prefix),
    }


def two_image_batch_run_fetch(workflow_id: str, *, save_prefix: str = "rh", colours=(0xFF0000, 0x00FF00)) -> dict:
    """Two 8×8 EmptyImages (`colours`) as one batch → RH Upload (a list of two names) →
    RH Node Override of remote node 1's image → RH Run Workflow (once per image) → RH Fetch
    Outputs → SaveImage (node 15)."""
    first, second = colours
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": first}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": second}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "11": {"class_type": "RHUpload", "inputs": {"image": ["3", 0], "account": "default"}},
        "12": {"class_type": "RHNodeOverride", "inputs": {"node_id": "1", "field_name": "image", "value": ["11", 0]}},
        **run_fetch(workflow_id, overrides=["12", 0], save_prefix=save_prefix),
    }


def run_fetch(workflow_id: str, *, overrides=None, seed: int | None = None, account: str = "default", prefix: str = "",
              save_prefix: str = "rh", kind: str = "workflow", save_images: bool = True) -> dict:
    """RH Run Workflow → RH Fetch Outputs (→ SaveImage); node ids prefixed with `prefix`."""
    run = {"workflow_id": workflow_id, "account": account, "kind": kind, "instance_type": "default",
           "seed": fresh_seed() if seed is None else seed}
    if overrides is not None:
        run["overrides"] = overrides
    graph = {
        f"{prefix}13": {"class_type": "RHRunWorkflow", "inputs": run},
        f"{prefix}14": {"class_type": "RHFetchOutputs",
                        "inputs": {"task": [f"{prefix}13", 0], "account": account, "size_policy": "pad"}},
    }
    if save_images:
        graph[f"{prefix}15"] = {"class_type": "SaveImage",
                                "inputs": {"images": [f"{prefix}14", 0], "filename_prefix": save_prefix}}
    return graph

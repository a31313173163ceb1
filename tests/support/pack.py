"""Loads the pack the way ComfyUI does: as a package from its folder, under a name of our
choosing, without putting the repository root on sys.path."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_MODULE_NAME = "rh_bridge_under_test"


def load_pack() -> ModuleType:
    """Import the pack's __init__.py as package `rh_bridge_under_test` (idempotent)."""
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE_NAME,
        REPO_ROOT / "__init__.py",
        submodule_search_locations=[str(REPO_ROOT)],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def pack_module(relative_name: str) -> ModuleType:
    """`pack_module("client.errors")` imports the pack's client/errors.py."""
    load_pack()
    return importlib.import_module(f"{PACK_MODULE_NAME}.{relative_name}")

"""Shared pieces of the benchmarks: the simulator and a real ComfyUI with the pack (from
the test support code), event timing, and the one output format.

Every benchmark prints exactly one line

    BENCH <name> value=<x> floor=<y> ratio=<x/y> target=<t> [more=...]

where the floor is measured in the same run on the same machine, plus a short table.
Nothing here passes or fails: the numbers are for people.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
for extra in (REPO_ROOT / "tests", BENCH_DIR):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from support.comfy_host import ComfyHost, RunResult  # noqa: E402
from support.simulator import DEFAULT_WORKFLOWS, WORKFLOWS, Simulator  # noqa: E402

#: Copies of the noise workflow under other ids: the pack learns running times per
#: workflow, so a benchmark that wants a first run (nothing learned) uses its own id.
BENCH_WORKFLOWS = {"noise_long": "1980000000000000904", "noise_first_socket": "1980000000000000905",
                   "noise_first_polling": "1980000000000000906"}

__all__ = ["ComfyHost", "RunResult", "Simulator", "WORKFLOWS", "BENCH_WORKFLOWS", "bench_simulator", "bench_line",
           "table", "median", "comfy_with_pack", "span", "event_time", "wall_of", "machine"]


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def bench_line(name: str, value: float, floor: float, target: str, **more) -> str:
    ratio = value / floor if floor else float("inf")
    extra = "".join(f" {k}={_fmt(v)}" for k, v in more.items())
    line = f"BENCH {name} value={_fmt(value)} floor={_fmt(floor)} ratio={ratio:.3f} target={target}{extra}"
    print(line, flush=True)
    return line


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join("    " + line for line in lines)
    print(text, flush=True)
    return text


@contextmanager
def bench_simulator(**kw):
    """A simulator serving the test workflows plus BENCH_WORKFLOWS."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="rh-bench-workflows-"))
    try:
        shutil.copytree(DEFAULT_WORKFLOWS, folder, dirs_exist_ok=True)
        for copy_id in BENCH_WORKFLOWS.values():
            shutil.copyfile(DEFAULT_WORKFLOWS / f"{WORKFLOWS['noise']}.json", folder / f"{copy_id}.json")
        with Simulator(workflows_dir=folder, **kw) as sim:
            yield sim
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def comfy_with_pack(sim: Simulator, keys: Sequence[str], name: str = "bench", **env):
    """A real ComfyUI with the pack, its default profile = `keys` of `sim`."""
    full_env = {"RUNNINGHUB_BASE_URL": sim.base_url, "RUNNINGHUB_API_KEY": ",".join(keys)}
    full_env.update({k: str(v) for k, v in env.items()})
    with ComfyHost(with_pack=True, env=full_env, name=name) as host:
        host.assert_pack_imported_cleanly()
        yield host


def event_time(result: RunResult, type_: str, node: str | None) -> float:
    """Receipt time (time.monotonic of this process) of the first `type_` event for `node`."""
    for e in result.events:
        if e.type == type_ and isinstance(e.data, dict) and e.data.get("node") == node \
                and e.data.get("prompt_id") == result.prompt_id:
            return e.t
    raise LookupError(f"no {type_} event for node {node} in prompt {result.prompt_id}")


def span(result: RunResult, first_node: str, then_node: str) -> float:
    """From `executing` of first_node to `executing` of then_node (the moment ComfyUI moved on)."""
    return event_time(result, "executing", then_node) - event_time(result, "executing", first_node)


_WALL_MINUS_MONO = time.time() - time.monotonic()


def wall_of(monotonic_t: float) -> float:
    """A time.monotonic() reading of this process as wall-clock time (the simulator's clock)."""
    return monotonic_t + _WALL_MINUS_MONO


def machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f", {kb / 1024 ** 2:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, {platform.python_implementation()} " \
           f"{platform.python_version()}, {platform.system()} {platform.release()}"

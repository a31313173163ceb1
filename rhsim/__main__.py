"""`python -m rhsim --host 127.0.0.1 --port 0 --workflows DIR --key KEY ...`"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .app import Settings, SimApp
from .protocol import redact
from .server import start_listeners
from .storage import Storage

log = logging.getLogger("rhsim")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rhsim", description="Local RunningHub simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--public-host", default=None, metavar="NAME",
                   help="the host name in the URLs replies carry (fileUrl, netWssUrl, download_url); default: the "
                        "address bound to (127.0.0.1 when bound to every interface)")
    p.add_argument("--files-port", type=int, default=0,
                   help="port of the output host (same address as --host; 0 picks a free port)")
    p.add_argument("--workflows", required=True, type=Path,
                   help="folder of API-format <workflowId>.json (AI-app ids map to <webappId>.json)")
    p.add_argument("--key", action="append", default=[], required=True, help="an accepted API key (repeatable)")
    p.add_argument("--foreign-key", action="append", default=[],
                   help="a key of the other site: answered 806 'user not exist' (repeatable)")
    p.add_argument("--concurrency", type=int, default=2, help="running tasks per key")
    p.add_argument("--run-seconds", type=float, default=0.0, help="minimum running time of a task")
    p.add_argument("--queue-seconds", type=float, default=0.0, help="minimum queued time of a task")
    p.add_argument("--queue-depth", type=int, default=10, help="queued tasks per key before create answers 421")
    p.add_argument("--coins", type=int, default=100_000, help="starting coins of every key")
    p.add_argument("--coins-per-task", type=int, default=17, help="coins a successful task costs")
    p.add_argument("--max-upload-mb", type=float, default=30.0)
    p.add_argument("--site", choices=["cn", "ai"], default="cn")
    p.add_argument("--comfyui", default=None, metavar="URL", help="execute on this ComfyUI server instead")
    p.add_argument("--data-dir", type=Path, default=None, help="uploads and outputs (default: a temp dir)")
    p.add_argument("--legacy", action="store_true", help="start in legacy-drift mode")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(app: SimApp, host: str, port: int, files_port: int, public_host: str | None = None) -> None:
    """Serves until SIGTERM or SIGINT; prints the one ready line once both hosts listen."""
    listeners = await start_listeners(app, host, port, files_port, public_host)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    log.info("API on %s, output files on %s", app.base_url, app.files_base_url)
    print(f"rhsim listening on {app.base_url}", flush=True)
    try:
        await stopped.wait()
    finally:
        await listeners.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.workflows.is_dir():
        print(f"rhsim: --workflows {args.workflows} is not a folder", file=sys.stderr)
        return 2
    if args.data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="rhsim-"))
        atexit.register(shutil.rmtree, data_dir, True)
    else:
        data_dir = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
    storage = Storage(data_dir, extra_input_dirs=[args.workflows / "input"])
    settings = Settings(concurrency=args.concurrency, run_seconds=args.run_seconds,
                        queue_seconds=args.queue_seconds, queue_depth=args.queue_depth,
                        legacy=args.legacy, coins_per_task=args.coins_per_task, max_upload_mb=args.max_upload_mb)
    if args.comfyui:
        from .executors.comfyui import ComfyUIExecutor

        def factory(st):
            return ComfyUIExecutor(args.comfyui, st)
    else:
        from .executors.builtin import BuiltinExecutor

        factory = BuiltinExecutor
    app = SimApp(workflows_dir=args.workflows, keys=args.key, site=args.site, storage=storage,
                 executor_factory=factory, settings=settings, foreign_keys=args.foreign_key)
    for account in app.accounts.values():
        account.coins = args.coins
        app._initial_accounts[account.key].coins = args.coins
    log.info("site %s, executor %s, keys %s, workflows %s, data %s", args.site, app.executor.name,
             ", ".join(redact(k) for k in args.key), args.workflows, data_dir)
    try:
        asyncio.run(serve(app, args.host, args.port, args.files_port, args.public_host))
    finally:
        app.tasks.stop()
        app.executor.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

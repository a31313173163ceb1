"""RH Remote Group: a group of the user's own graph, run on RunningHub's native ComfyUI endpoint.

The front end (or POST /runninghub/group/convert, for headless use) replaces the nodes of a
group marked "Run on RunningHub" by this node: its `group` input carries the group's API
nodes and its border (remote/group_prompt.py), `in_k` the values entering it, `out_k` the
values leaving it. Execution (remote/group_run.py): check the remote has every node class
and combo value, upload IMAGE/MASK inputs, submit once and wait (remote/native_run.py:
ledger, progress, cancel, re-attach), download and decode the outputs. Status goes through
the same channel as RH Run Workflow's (nodes/sweep.py).
"""

from __future__ import annotations

import functools
import logging
from contextlib import nullcontext
from typing import Any

from comfy_api.latest import io

from ..host import accounts, comfy
from ..remote.group_prompt import MAX_PORTS, GroupSpec
from ..remote.status import RunStatus
from .sockets import CATEGORY, account_input
from .sweep import NodeStop, sweep_for

log = logging.getLogger("runninghub_bridge.nodes")


class RHRemoteGroup(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RHRemoteGroup",
            display_name="RH Remote Group",
            category=CATEGORY,
            description=("Runs a group of your own graph on RunningHub's native ComfyUI endpoint and returns what "
                         "leaves the group. Made by the front end for groups marked 'Run on RunningHub' (or by "
                         "POST /runninghub/group/convert); the same inputs reuse the earlier result."),
            inputs=[
                io.String.Input("group", multiline=True, default="",
                                tooltip="The group's API-format nodes and border, as JSON (written by the front end)."),
                account_input(),
                *[io.AnyType.Input(f"in_{k}", optional=True, tooltip=f"Value entering the group ({k})")
                  for k in range(MAX_PORTS)],
            ],
            outputs=[io.AnyType.Output(f"out_{k}", display_name=f"out_{k}") for k in range(MAX_PORTS)],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    async def execute(cls, group: str, account: str = "default", **ins: Any) -> io.NodeOutput:
        spec = GroupSpec.from_json(group)
        node_id = cls.hidden.unique_id
        prompt_id, index = comfy.executing_context()
        index = index or 0  # a list-mapped call (a list wired into the group): one run per item
        sweep = sweep_for(prompt_id, node_id)
        stop = NodeStop(prompt_id, sweep, index)
        acct = accounts.account_for(account)
        sweep.show(index, RunStatus("SUBMITTING", f"Group \"{spec.title}\": checking it on {acct.site.host}…"))
        done, values = await stop.run_in_sweep(f"RH Remote Group {node_id}", _run, spec, ins, acct, sweep, index,
                                               stop.should_stop, prompt_id, node_id)
        outputs = list(values) + [None] * (MAX_PORTS - len(values))
        return io.NodeOutput(*outputs, ui={"text": [done.line], "rh_status": [done.to_event()]})


def _run(spec: GroupSpec, ins: dict, acct, sweep, index: int, should_stop, prompt_id, node_id
         ) -> tuple[RunStatus, list]:
    """Worker thread: the whole remote run of the group (remote/group_run.py)."""
    from ..remote import group_run
    from ..remote.remote_check import MissingOnRemoteError

    native = _native_client(acct)
    object_info = native.object_info()  # cached: one request per site and key every few minutes
    prefetch = early = uploads = None
    try:
        if group_run.precheck(spec, ins, object_info, host=acct.site.host):
            # the prompt's socket connects while the inputs encode (the encoder leaves the GIL)
            prefetch = group_run.Prefetch(spec, None, native.download)
            early = _early_socket(native, spec.prompt, prefetch)
        prepared = group_run.prepare(spec, ins)
        if early is not None:
            early.name_nodes(prepared.planned.prompt)  # the loads and outputs the pack added, too
            prefetch.expect(prepared.planned.output_nodes)
        try:
            group_run.check_remote(prepared, object_info, host=acct.site.host, site=acct.site.base_url)
        except MissingOnRemoteError:  # the cached list may predate a model just added: ask once more
            group_run.check_remote(prepared, native.object_info(max_age=0), host=acct.site.host,
                                   site=acct.site.base_url)
        journal = _journal(acct, prompt_id, node_id, index)
        parts = group_run.fingerprint_parts(acct.site.base_url, acct.profile, prepared)
        earlier = _earlier_run(native, journal, parts)
        senders = ()
        if earlier is not None:  # re-attached to or reused: files go up only if a new prompt is due
            senders = _senders_of(acct, earlier, native)  # only that key's remote knows the prompt
            if early is not None:
                early.close()  # that earlier prompt has its own socket, if any
                early = None
        else:  # the files go up while run_prompt records the run
            uploads = group_run.start_uploads(native.upload_image, prepared)
        with early or nullcontext() as early:
            result = _run_prompt(native, prepared.planned.prompt, journal=journal, parts=parts,
                                 should_stop=should_stop, on_status=functools.partial(_show_progress, sweep, index),
                                 early=early, needed_outputs=prepared.planned.output_nodes.values(),
                                 ready=functools.partial(_uploaded_prompt, native, prepared, uploads),
                                 senders=senders)
        values = group_run.collect_outputs(spec, prepared.planned.output_nodes, result.outputs,
                                           result.native.download, prefetch if result.native is native else None)
    finally:
        if uploads is not None:
            _settle_uploads(uploads)
        if early is not None:
            early.close()
        if prefetch is not None:
            prefetch.close()
    reused = " (re-attached to an earlier run: nothing new billed)" if result.reattached else ""
    done = RunStatus("SUCCESS", f"Group \"{spec.title}\": done on {acct.site.host}, RunningHub prompt "
                                f"{result.prompt_id[:8]}{reused}", task_id=result.prompt_id, outputs=len(values))
    sweep.show(index, done)
    return done, values


def _uploaded_prompt(native, prepared, uploads) -> dict:
    """The remote prompt to send, its files named as the remote answered their uploads (the
    ones started early, else uploaded now)."""
    from ..remote import group_run

    names = uploads.result() if uploads is not None else group_run.upload_all(native.upload_image, prepared)
    return prepared.with_names(names).prompt


def _settle_uploads(uploads) -> None:
    """Early uploads the run did not wait for (it re-attached, or failed first): let them end,
    whatever they came to (the run's own error, if any, is the one to report)."""
    uploads.cancel()
    try:
        uploads.result()
    except Exception as exc:  # noqa: BLE001 - not this run's outcome
        log.debug("early uploads of a group run ended with %s", type(exc).__name__)


def _show_progress(sweep, index: int, status: RunStatus) -> None:
    """run_prompt's statuses, but its SUBMITTING and SUCCESS: the node sends its own (SUBMITTING
    before the checks and uploads, SUCCESS with the summary, task id and output count once the
    outputs are decoded), so the front end gets each state once. QUEUED, which follows
    run_prompt's SUBMITTING at once, brings the prompt id."""
    if status.state not in ("SUBMITTING", "SUCCESS"):
        sweep.show(index, status)


def _native_client(acct):
    """The native-endpoint client of the account's first usable key. One key for the whole
    run: the uploads, the prompt and the downloads must see the same account's files."""
    from ..remote.native_shared import shared_native

    return shared_native(accounts.client_for(acct))


def _journal(acct, prompt_id, node_id, index):
    from ..host import tasks

    return tasks.journal(acct, 0, prompt_id, node_id, index)


def _early_socket(native, prompt: dict, prefetch):
    """The new prompt's /ws, opened now (native_socket.EarlySocket), telling `prefetch` of the
    output nodes that ran (outputs download while the remote finishes)."""
    from ..remote.native_socket import EarlySocket

    return EarlySocket.open(native, prompt, on_executed=prefetch.executed)


def _earlier_run(native, journal, parts: dict):
    """The ledger's earlier run of the same inputs (run_prompt re-attaches to it), or None."""
    from ..remote.native_record import fingerprint_for

    return journal.ledger.lookup(fingerprint_for(native.site.base_url, journal, {}, parts))


def _senders_of(acct, earlier, native) -> tuple:
    """The native client of the key that sent the earlier run's prompt (by its last 4 in the
    ledger), when that is not `native`'s: the account's first usable key can change between
    runs (a key without balance is set aside, the profile's keys edited). run_prompt
    re-attaches with it; a new prompt, if one is due, still goes with `native`."""
    if not earlier.key_hint or earlier.key_hint == native.key.hint:
        return ()
    from ..remote.native_shared import shared_native

    senders = [c for c in accounts.pool_for(acct).clients() if c.key.hint == earlier.key_hint]
    if len(senders) != 1:  # that key left the profile (or two end alike): the lookup then says what it can
        return ()
    log.info("native prompt %s was sent with key %s: re-attaching with that key", earlier.task_id, earlier.key_hint)
    return (shared_native(senders[0]),)


def _run_prompt(native, prompt: dict, *, journal, parts: dict, should_stop, on_status, early=None,
                needed_outputs=None, ready=None, senders=()):
    from ..remote.native_run import run_prompt

    return run_prompt(native, prompt, fingerprint_parts=parts, should_stop=should_stop, on_status=on_status,
                      journal=journal, early=early, needed_outputs=needed_outputs, ready=ready, senders=senders)

"""RunningHub business codes → the exception a user can act on."""

from __future__ import annotations

from typing import Any

from . import errors
from .redact import scrub
from .sites import Site

# Codes that describe a task state rather than an error.
TASK_RUNNING = 804
TASK_QUEUED = 813
TASK_FAILED = 805
CAPACITY_CODES = {415, 421, 814}
AUTH_CODES = {801, 802, 806, 811}

_CODE_CLASS: dict[int, type[errors.RunningHubError]] = {
    301: errors.ParameterError,
    380: errors.WorkflowNotFoundError,
    412: errors.ParameterError,
    415: errors.CapacityError,
    416: errors.InsufficientFundsError,
    421: errors.CapacityError,
    423: errors.TaskNotFoundError,
    433: errors.ValidationFailedError,
    435: errors.MembershipError,
    436: errors.MembershipError,
    500: errors.ServerError,
    801: errors.AuthError,
    802: errors.AuthError,
    803: errors.InvalidNodeInfoError,
    805: errors.TaskFailedError,
    806: errors.AuthError,
    807: errors.TaskNotFoundError,
    808: errors.UploadFailedError,
    809: errors.UploadTooLargeError,
    810: errors.WorkflowNotReadyError,
    811: errors.AuthError,
    812: errors.InsufficientFundsError,
    814: errors.CapacityError,
    901: errors.WorkflowNotFoundError,
}


def _what_to_do(code: int, site: Site, key_hint: str) -> str:
    if code in AUTH_CODES:
        if code == 801:
            return "Free accounts cannot use the API: upgrade the RunningHub account that owns this key."
        if code == 811:
            return "The enterprise key is invalid: check it in the RunningHub console."
        return f"RunningHub at {site.host} refused the key {key_hint}. {site.other_site_hint()}"
    return {
        301: "Check the node's inputs (ids, workflow id, field values).",
        380: (f"Check the workflow id. It must be a workflow of the account that owns the key, "
              f"on {site.host}. {site.other_site_hint()}"),
        412: "The pack called a path the service does not know: please report this as a bug.",
        415: "No free exclusive instance right now; nothing was created. Try again shortly.",
        416: f"The account's balance is too low: top up on {site.host} and queue again.",
        421: "The account's concurrent-task limit is reached; nothing was created.",
        423: "The task id is unknown to this account on this site.",
        433: "RunningHub's ComfyUI rejected the graph: fix the node inputs listed above.",
        435: "This workflow needs the 48G instance: set instance_type to 'plus' on RH Run Workflow.",
        436: "The account's exclusive-instance membership has expired: renew it on the website.",
        500: "RunningHub had an internal error. Try again later.",
        803: ("The overrides do not match the remote workflow: pick node ids and field names "
              "from the workflow's API format (the field picker on RH Node Override)."),
        807: "The task id is unknown to this account on this site.",
        808: "RunningHub's storage failed while uploading. Try again.",
        809: ("The file is larger than RunningHub accepts for this account (its docs give 30 MB per file, "
              "older ones 10 MB): make it smaller (downscale, shorter clip)."),
        810: ("RunningHub accepts a workflow through the API only after it has run once on the "
              "website: open it there, run it once, then queue again."),
        812: "The enterprise account's funds are exhausted: top up in the RunningHub console.",
        814: "The personal queue is full (over 1000 tasks); wait for some to finish.",
        901: f"Check the AI app id: no such app on {site.host}. {site.other_site_hint()}",
    }.get(code, "")


def error_for(code: int, msg: str, data: Any, *, site: Site, key_hint: str, keys: tuple[str, ...] = (),
              operation: str = "", task_id: str | None = None) -> errors.RunningHubError:
    """The exception for a non-zero business code. `operation` names the call for the message."""
    cls = _CODE_CLASS.get(code, errors.RunningHubError)
    safe_msg = scrub(str(msg or ""), keys)
    advice = _what_to_do(code, site, key_hint)
    head = f"RunningHub {operation} failed" if operation else "RunningHub call failed"
    text = f"{head}: {code} {safe_msg}".rstrip()
    if task_id:
        text += f" (task {task_id})"
    if advice:
        text += f". {advice}"
    return cls(text, code=code, task_id=task_id, site=site.name)

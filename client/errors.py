"""What can go wrong, one class per thing the user can do about it.

Every message names what to do. Messages never hold a key: they are built from the
redacted key hint and scrubbed server text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class RunningHubError(Exception):
    """Base class. `code` is RunningHub's business code when there is one."""

    def __init__(self, message: str, *, code: int | str | None = None,
                 task_id: str | None = None, site: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.task_id = task_id
        self.site = site

    def __str__(self) -> str:
        return self.message


# --- transport and protocol -------------------------------------------------------------

class TransportError(RunningHubError):
    """The service could not be reached, or kept failing after the retries that were safe."""


class ProtocolError(RunningHubError):
    """The reply was not RunningHub's protocol (HTML page, malformed JSON, unknown shape)."""


class SubmissionUncertainError(RunningHubError):
    """A create/run request was sent but its reply was lost or said nothing certain (a code
    500): a billed task may exist.

    The pack never resubmits in this case, so nothing is billed twice."""

    @classmethod
    def after(cls, what_happened: str, *, host: str, site: str | None = None) -> "SubmissionUncertainError":
        """The error, with the one wording for every way a submission can end uncertain."""
        return cls(f"{what_happened}, so the task may have been submitted (and billed). The pack did not "
                   f"resubmit, to avoid billing twice: check the task list on {host} before queueing again.",
                   site=site)


class ServerError(RunningHubError):
    """RunningHub reported an internal error (code 500)."""


# --- account and key ---------------------------------------------------------------------

class CredentialsError(RunningHubError):
    """No key configured, or a profile that does not exist."""


class ProfileChangeRefused(CredentialsError):
    """A change of a profile that would send a key somewhere it was not entered for, or
    hold more keys than allowed; nothing was written."""


class AuthError(RunningHubError):
    """The key was refused (801, 802, 806, 811)."""


class InsufficientFundsError(RunningHubError):
    """Balance too low (416, 812)."""


class MembershipError(RunningHubError):
    """The account lacks what the request needs (435 plus instance, 436 exclusive membership)."""


# --- the request itself -------------------------------------------------------------------

class ParameterError(RunningHubError):
    """RunningHub rejected a parameter (301, 412)."""


class WorkflowNotFoundError(RunningHubError):
    """Unknown workflow or AI app id (380, 901)."""


class WorkflowNotReadyError(RunningHubError):
    """The workflow never ran on the website (810)."""


@dataclass(frozen=True)
class BadOverride:
    node_id: str
    field_name: str
    reason: str


class InvalidNodeInfoError(RunningHubError):
    """nodeInfoList entries that do not match the workflow (803, or the local check)."""

    def __init__(self, message: str, *, bad: list[BadOverride] | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.bad = list(bad or [])


class ValidationFailedError(RunningHubError):
    """RunningHub's ComfyUI refused the graph (433); `node_errors` as ComfyUI reports them."""

    def __init__(self, message: str, *, node_errors: dict | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.node_errors = node_errors or {}


class CapacityError(RunningHubError):
    """No capacity now (415, 421, 814); nothing was created, so waiting and resubmitting is safe."""


class UploadTooLargeError(RunningHubError):
    """File over the upload limit (809, or the local check before sending)."""


class UploadFailedError(RunningHubError):
    """RunningHub's storage failed (808) and retries did not help."""


# --- tasks ---------------------------------------------------------------------------------

class TaskNotFoundError(RunningHubError):
    """Unknown task id (807, 423) on this site for this key."""


@dataclass(frozen=True)
class FailureReason:
    """Why a remote task failed, as RunningHub reports it (805 data.failedReason)."""

    node_id: str | None = None
    node_name: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    traceback_tail: list[str] = field(default_factory=list)
    raw_message: str | None = None

    def describe(self) -> str:
        where = ""
        if self.node_id or self.node_name:
            where = f"remote node {self.node_id or '?'} ({self.node_name or 'unknown type'})"
        what = ": ".join(p for p in (self.exception_type, self.exception_message) if p)
        if not what:
            what = self.raw_message or "no reason given"
        return f"{where}: {what}" if where else what


class TaskFailedError(RunningHubError):
    """The remote task ended FAILED (805)."""

    def __init__(self, message: str, *, reason: FailureReason | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.reason = reason or FailureReason()


class TaskCancelledError(TaskFailedError):
    """The remote task was cancelled (by this pack or on the website)."""


class TaskTimeoutError(RunningHubError):
    """Waiting took longer than the budget; the remote task was left as it was."""


class WaitInterrupted(RunningHubError):
    """The user interrupted the wait. `cancelled`: this stop cancelled the remote task (it
    bills no further; a ledger entry then records CANCEL). Otherwise nothing was created, or
    the task is left as it was: the cancel failed, ComfyUI shut down leaving it running, or
    it had already ended. Its entry then stays as it was, so the task panel can still
    cancel it and the next queue re-attaches to it instead of paying again."""

    def __init__(self, message: str, *, cancelled: bool = False, **kwargs):
        super().__init__(message, **kwargs)
        self.cancelled = cancelled


class DownloadError(RunningHubError):
    """An output file could not be downloaded (expired URL, too large, bad address)."""

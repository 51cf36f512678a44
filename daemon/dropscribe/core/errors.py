"""What can go wrong, sorted by what the service must do about it.

::

    DropscribeError                 base class, never raised itself
    ├── ConfigError                 bad config or rule file; every problem listed; CLI exit 78
    ├── InputRejectedError          this file can never succeed -> failed/ with a stable code
    ├── RemoteRejectedError         the API refused this input for good -> failed/ (code asr_rejected)
    ├── AccountError                key, rights or billing problem -> pause the whole queue
    ├── StateFullError              the journal's filesystem is full -> pause until there is room
    ├── JournalVersionError         the journal was written by a newer release -> refuse to open it
    └── TransientError              try again later; never sends a file to failed/
        ├── AsrUnavailableError     throttling, 5xx, timeouts, network errors
        ├── TruncatedAnswerError    the answer covers less audio than was sent (code asr_truncated)
        ├── StorageUnavailableError the object store could not be reached or refused for now
        └── ShareUnavailableError   the inbox share is gone, stale or unreadable for now

Adapters translate foreign exceptions (httpx, botocore, OSError) into these at their boundary, so the
service layer decides from the class alone.
"""

from __future__ import annotations


class DropscribeError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigError(DropscribeError):
    """Raised when a config or rule file is invalid; carries every problem found, not just the first."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


class InputRejectedError(DropscribeError):
    """Raised when a file can never be transcribed as it is (not audio, too large, a symlink...).

    ``code`` is stable and documented; it lands in ``<stem>.error.json``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RemoteRejectedError(DropscribeError):
    """Raised when DashScope refuses this input for good (InvalidParameter, DataInspectionFailed...)."""

    def __init__(self, remote_code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{remote_code}: {message}")
        self.remote_code = remote_code
        self.message = message
        self.request_id = request_id


class AccountError(DropscribeError):
    """Raised on InvalidApiKey, AccessDenied, Arrearage and kin: retrying any file cannot help."""

    def __init__(self, remote_code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{remote_code}: {message}")
        self.remote_code = remote_code
        self.message = message
        self.request_id = request_id


class TransientError(DropscribeError):
    """Raised when the same step may well succeed later; the file waits and is retried."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        remote_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.remote_code = remote_code
        self.request_id = request_id


class AsrUnavailableError(TransientError):
    """Raised on throttling, server errors, timeouts and connection failures of the ASR API."""


class TruncatedAnswerError(TransientError):
    """Raised when the API answered for less audio than it was sent; the answer is not kept."""

    code = "asr_truncated"


class StorageUnavailableError(TransientError):
    """Raised when the object store cannot take or serve the audio right now."""


class ShareUnavailableError(TransientError):
    """Raised when an inbox, done/ or failed/ folder cannot be reached right now."""


class OutputFullError(TransientError):
    """Raised when done/ or failed/ has no room (ENOSPC, EDQUOT) for the sidecars or the source."""

    def __init__(self, folder: str, message: str) -> None:
        super().__init__(message)
        self.folder = folder


class StateFullError(DropscribeError):
    """Raised when the journal's filesystem is full: nothing can be recorded, so nothing may be done."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JournalUnreachableError(StateFullError):
    """The journal's database cannot record anything right now (down, restarting, unreachable, full).

    Unlike a full local disk, it usually comes back by itself within seconds (a restart, a failover).
    """


class JournalVersionError(DropscribeError):
    """Raised when the journal's schema is newer than this release knows: it is left untouched.

    Reading it could misjudge what was paid for, and migrating backwards could lose what a newer
    release recorded, so the only safe move is to stop and say which release is needed.
    """

    def __init__(self, path: str, found: int, known: int) -> None:
        super().__init__(
            f"the journal {path} has schema version {found}, newer than this release knows"
            f" (up to {known}); run the newer dropscribe that wrote it, or point state.path elsewhere"
        )
        self.path = path
        self.found = found
        self.known = known


class LeaseLostError(DropscribeError):
    """Raised when this process's claim on a file expired and may now be another process's.

    Whatever the process was doing for that file stops before its next paid request or final step:
    the process that holds the claim now finishes the file from the journal.
    """

    def __init__(self, inbox: str, relpath: str) -> None:
        super().__init__(f"the claim on {relpath} in {inbox} expired; another process may hold it now")
        self.inbox = inbox
        self.relpath = relpath

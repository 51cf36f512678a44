"""How jobs are kept in SQLite rows: paths as raw bytes, error and meta as JSON text."""

from __future__ import annotations

import json
from typing import Any, Protocol

from dropscribe.core.jobs import Job


class Row(Protocol):
    """A row read by column name: ``sqlite3.Row``, or a dict from another database's driver."""

    def __getitem__(self, key: str, /) -> Any: ...


def path_value(text: str) -> bytes:
    """Paths are stored as their raw bytes: a name that is not UTF-8 must still round-trip."""
    return text.encode("utf-8", "surrogateescape")


def path_text(value: bytes | str) -> str:
    # journals of earlier releases stored paths as text
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def job_from_row(row: Row) -> Job:
    return Job(
        id=row["id"], inbox=path_text(row["inbox"]), relpath=path_text(row["relpath"]),
        state=row["state"],
        sha256=row["sha256"], size=row["size"], dev=row["dev"], ino=row["ino"],
        mtime_ns=row["mtime_ns"], result_key=row["result_key"], attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
        outcome=row["outcome"],
        final_name=path_text(row["final_name"]) if row["final_name"] is not None else None,
        error=json.loads(row["error_json"]) if row["error_json"] else None,
        meta=json.loads(row["meta_json"]) if row["meta_json"] else {},
        created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"],
    )  # fmt: skip

"""Every process sharing one journal, as ``status``, ``explain``, the web page and metrics show it.

Pure: the journal's :class:`HostRecord`s and :class:`ClaimRecord`s and the lease length in, a plain
JSON-able dict out (and the lines a person reads from it). A host is ``alive`` while it was seen within
a lease, ``silent`` once it was not (presumed dead: its leases run out and other hosts take its files
over), ``stopped`` after a clean stop. Claims with an empty inbox lock result keys (identical bytes
being recognized), not files: they are counted apart, never listed as files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dropscribe.core.hosts import ClaimRecord, HostRecord
from dropscribe.core.status_view import ago, elapsed

HOST_STATES = ("alive", "silent", "stopped")
SEEN_WITHIN_S = 86400.0  # hosts shown: those seen within a day, and any still holding a claim


def host_state(host: HostRecord, lease_s: float) -> str:
    if host.stopped:
        return "stopped"
    return "alive" if host.seen_ago_s <= lease_s else "silent"


def _name_of(holder: str) -> tuple[str, int | None]:
    """Hostname and pid from a holder id ``<hostname>:<pid>:<nonce>`` (for a claim whose host row is gone)."""
    parts = holder.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return holder, None


def hosts_view(hosts: Iterable[HostRecord], claims: Iterable[ClaimRecord], lease_s: float) -> dict[str, Any]:
    """``{"lease_s", "running", "counts": {state: n}, "hosts": [...], "expired": [...]}``.

    Each host lists the files whose lease it holds now (``expires_in_s`` left); ``expired`` lists the
    claims whose lease ran out, each file waiting for a process to take it over.
    """
    rows: dict[str, dict[str, Any]] = {}
    for host in hosts:
        rows[host.holder] = {
            "holder": host.holder, "hostname": host.hostname, "pid": host.pid,
            "started_at": host.started_at, "seen_ago_s": round(host.seen_ago_s, 1),
            "state": host_state(host, lease_s), "files": [], "content_locks": 0,
        }  # fmt: skip
    expired: list[dict[str, Any]] = []
    for claim in claims:
        row = rows.get(claim.holder)
        hostname, pid = (row["hostname"], row["pid"]) if row is not None else _name_of(claim.holder)
        if not claim.inbox:  # a lock, not a file: identical bytes being recognized, or the budgets' turn
            if row is not None and claim.expires_in_s >= 0 and claim.relpath.startswith("content:"):
                row["content_locks"] += 1
            continue
        if claim.expires_in_s < 0:
            expired.append({"inbox": claim.inbox, "relpath": claim.relpath, "holder": claim.holder,
                            "hostname": hostname, "pid": pid,
                            "expired_s": round(-claim.expires_in_s, 1)})  # fmt: skip
        elif row is not None:
            row["files"].append({"inbox": claim.inbox, "relpath": claim.relpath,
                                 "expires_in_s": round(claim.expires_in_s, 1)})  # fmt: skip
    counts = dict.fromkeys(HOST_STATES, 0)
    for row in rows.values():
        counts[row["state"]] += 1
    return {"lease_s": lease_s, "running": counts["alive"] > 0, "counts": counts,
            "hosts": list(rows.values()), "expired": expired}  # fmt: skip


def claim_of(view: Mapping[str, Any], inbox: str, relpath: str) -> dict[str, Any] | None:
    """Who claims the file, ``{"hostname", "pid", "holder", "expires_in_s"}`` (negative: expired)."""
    for host in view.get("hosts") or ():
        for held in host.get("files") or ():
            if (held.get("inbox"), held.get("relpath")) == (inbox, relpath):
                return {"hostname": host.get("hostname"), "pid": host.get("pid"),
                        "holder": host.get("holder"), "state": host.get("state"),
                        "expires_in_s": held.get("expires_in_s")}  # fmt: skip
    for gone in view.get("expired") or ():
        if (gone.get("inbox"), gone.get("relpath")) == (inbox, relpath):
            return {"hostname": gone.get("hostname"), "pid": gone.get("pid"), "holder": gone.get("holder"),
                    "state": None, "expires_in_s": -float(gone.get("expired_s") or 0.0)}  # fmt: skip
    return None


def claims_per_host(view: Mapping[str, Any]) -> dict[str, int]:
    """Files claimed now, per hostname (every listed host appears, with 0 if it holds none)."""
    counts: dict[str, int] = {}
    for host in view.get("hosts") or ():
        name = str(host.get("hostname"))
        counts[name] = counts.get(name, 0) + len(host.get("files") or ())
    return counts


def _who(entry: Mapping[str, Any]) -> str:
    pid = entry.get("pid")
    return f"{entry.get('hostname')} pid {pid}" if pid is not None else str(entry.get("hostname"))


def claim_text(claim: Mapping[str, Any]) -> str:
    """A file's claim in words, for ``explain``."""
    left = float(claim.get("expires_in_s") or 0.0)
    if left < 0:
        return (f"claimed by {_who(claim)}, whose lease expired {ago(-left)}; it waits for another "
                "process to take it over")  # fmt: skip
    return f"being processed by {_who(claim)} (lease runs {elapsed(left)} more)"


def host_summary(host: Mapping[str, Any], clock: Callable[[float], str]) -> str:
    """One host on one line: its state, since when it runs and when it was last seen."""
    state = str(host.get("state"))
    seen = ago(float(host.get("seen_ago_s") or 0.0))
    said = {"alive": f"alive, last seen {seen}",
            "silent": f"silent (presumed dead, its leases run out), last seen {seen}",
            "stopped": f"stopped {seen}"}.get(state, f"{state}, last seen {seen}")  # fmt: skip
    started = host.get("started_at")
    since = f", up since {clock(float(started))}" if isinstance(started, int | float) else ""
    return f"{_who(host)}: {said}{since}"


def headline(view: Mapping[str, Any]) -> str:
    """Whether the shared service runs, from the hosts: ``running on 2 host(s) (a pid 1, b pid 2)``."""
    alive = [h for h in view.get("hosts") or () if h.get("state") == "alive"]
    if not alive:
        return "not running on any host"
    return f"running on {len(alive)} host(s) ({', '.join(_who(h) for h in alive)})"


def host_lines(
    view: Mapping[str, Any], *, shown: Callable[[str, str], str], clock: Callable[[float], str]
) -> list[str]:
    """The hosts section of ``dropscribe status``: each host, the files it holds, the expired claims."""
    lines = [f"hosts (lease {elapsed(float(view.get('lease_s') or 0.0))}):"]
    for host in view.get("hosts") or ():
        lines.append(f"  {host_summary(host, clock)}")
        for held in host.get("files") or ():
            left = elapsed(float(held.get("expires_in_s") or 0.0))
            lines.append(f"    holds {shown(str(held.get('inbox')), str(held.get('relpath')))} "
                         f"(lease runs {left} more)")  # fmt: skip
    if not view.get("hosts"):
        lines.append("  none seen in the last 24 h")
    for gone in view.get("expired") or ():
        lines.append(f"  expired: {shown(str(gone.get('inbox')), str(gone.get('relpath')))} (held by "
                     f"{_who(gone)}, lease expired {ago(float(gone.get('expired_s') or 0.0))}; "
                     "waits to be taken over)")  # fmt: skip
    return lines

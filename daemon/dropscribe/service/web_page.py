"""The status page as HTML: a :class:`~dropscribe.core.status_view.StatusView` rendered on the server.

No script, no build step, no external asset: the page refreshes itself with a meta refresh, its CSS is
inline and it reads on a phone. Every piece of text that came from outside (file and folder names,
error messages) goes through :func:`html.escape`, so a file named like markup shows as its name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from dropscribe.core.status_view import (
    BudgetLine,
    FinishedLine,
    InboxLine,
    InFlightLine,
    StatusView,
    ago,
    elapsed,
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1rem;
  color:#1d232a;background:#f6f7f9;line-height:1.4}
main{max-width:60rem;margin:0 auto}
h1{font-size:1.4rem;margin:0 0 .5rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.headline{padding:.6rem .8rem;border-radius:.4rem;font-weight:600}
.ok{background:#dff3e4}.warning{background:#fff1c2}.error{background:#fbd5d5}
.banner{padding:.8rem;border-radius:.4rem;background:#b42318;color:#fff;font-weight:600;margin:.5rem 0}
ul.cards{list-style:none;margin:0;padding:0;display:grid;gap:.5rem}
.cards li{background:#fff;border-radius:.4rem;padding:.6rem .8rem}
.name{font-weight:600;word-break:break-all}
.stats{display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin-top:.25rem}
.bad{color:#b42318;font-weight:600}
.muted{color:#5b6570;font-size:.9rem;word-break:break-all}
.billed{display:flex;gap:1rem;flex-wrap:wrap}
.billed div{background:#fff;padding:.6rem .8rem;border-radius:.4rem}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:.4rem}
th,td{text-align:left;padding:.4rem .6rem;vertical-align:top;border-bottom:1px solid #e4e7eb}
td ul{margin:0;padding-left:1rem}
"""


def _cards(items: Iterable[str], empty: str) -> str:
    """Items are given as HTML of ours with every outside text already escaped."""
    body = "".join(f"<li>{item}</li>" for item in items)
    return f'<ul class="cards">{body}</ul>' if body else f'<p class="muted">{escape(empty)}</p>'


def _span(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<span{attr}>{escape(text)}</span>"


def _inbox_card(line: InboxLine) -> str:
    if line.unreachable:
        state = _span(f"unreachable: {line.unreachable}", "bad")
    elif line.output_full:
        state = _span(f"output full: {line.output_full}", "bad")
    else:
        state = _span("up")
    stats = [
        _span(f"{line.waiting} waiting"), _span(f"{line.settling} settling"),
        _span(f"{line.held} held by a bad rule file", "bad" if line.held else ""),
        _span(f"{line.over_budget} over budget", "bad" if line.over_budget else ""),
        _span(f"{line.in_flight} in flight"),
    ]  # fmt: skip
    return f'<div class="name">{escape(line.name)}</div>{state}<div class="stats">{"".join(stats)}</div>'


def _finished_card(line: FinishedLine, failures: bool) -> str:
    parts = [f'<div class="name">{escape(line.relpath)}</div>']
    if failures:
        parts.append(f"<div>{_span(line.code or '', 'bad')} {escape(line.message or '')}</div>")
    where = f"{line.inbox} · {line.when}" if line.inbox else line.when
    parts.append(f'<div class="muted">{escape(where)}</div>')
    return "".join(parts)


def _in_flight_card(line: InFlightLine) -> str:
    return (f'<div class="name">{escape(line.relpath)}</div>'
            f"<div>{escape(line.progress)}, {escape(line.elapsed)}</div>"
            f'<div class="muted">{escape(line.inbox)}</div>')  # fmt: skip


def _budget_card(line: BudgetLine) -> str:
    used = _span(f"{line.used} of {line.limit}", "bad" if line.waiting else "")
    held = f" ({line.waiting} file(s) wait for it)" if line.waiting else ""
    return (f'<div class="name">{escape(line.scope)}</div><div>{escape(line.period)}: {used}{held}</div>'
            f'<div class="muted">resets {escape(line.resets)}</div>')  # fmt: skip


def _utc(at: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at)) if isinstance(at, int | float) else ""


def _hosts_section(hosts: Mapping[str, Any]) -> list[str]:
    """Every process sharing the journal (``state.url``), the files each holds, and expired claims."""
    rows = []
    for host in hosts.get("hosts") or ():
        state = str(host.get("state"))
        held = "".join(
            f'<li>{escape(str(f.get("relpath")))} <span class="muted">({escape(str(f.get("inbox")))}; '
            f"lease {escape(elapsed(float(f.get('expires_in_s') or 0.0)))} left)</span></li>"
            for f in host.get("files") or ()
        )
        rows.append(
            f'<tr class="host-{escape(state)}"><td class="name">{escape(str(host.get("hostname")))}</td>'
            f"<td>{escape(str(host.get('pid')))}</td>"
            f"<td>{_span(state, '' if state != 'silent' else 'bad')}</td>"
            f"<td>{escape(_utc(host.get('started_at')))}</td>"
            f"<td>{escape(ago(float(host.get('seen_ago_s') or 0.0)))}</td>"
            f"<td>{f'<ul>{held}</ul>' if held else '—'}</td></tr>"
        )
    parts = ["<h2>Hosts</h2>"]
    if hosts.get("problem"):
        parts.append(f'<p class="bad">{escape(str(hosts["problem"]))}</p>')
    if rows:
        parts.append('<table id="hosts"><thead><tr><th>Host</th><th>PID</th><th>State</th><th>Up since</th>'
                     "<th>Last seen</th><th>Files held</th></tr></thead><tbody>" + "".join(rows)
                     + "</tbody></table>")  # fmt: skip
    else:
        parts.append('<p class="muted">No host seen in the last 24 h.</p>')
    expired = [
        f'<div class="name">{escape(str(e.get("relpath")))}</div><div class="bad">lease of '
        f"{escape(str(e.get('hostname')))} (pid {escape(str(e.get('pid')))}) expired "
        f"{escape(ago(float(e.get('expired_s') or 0.0)))}; waits to be taken over</div>"
        f'<div class="muted">{escape(str(e.get("inbox")))}</div>'
        for e in hosts.get("expired") or ()
    ]
    if expired:
        parts += ["<h3>Expired leases</h3>", _cards(expired, "")]
    return parts


def render_page(view: StatusView, title: str = "dropscribe", hosts: Mapping[str, Any] | None = None) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{int(view.refresh_s)}">',
        f"<title>{escape(title)}: {escape(view.headline)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
    ]
    if view.banner:  # the banner says it all; the headline would only repeat "Paused"
        parts.append(f'<div class="banner" id="banner" role="alert">{escape(view.banner)}</div>')
    else:
        parts.append(
            f'<div class="headline {escape(view.level)}" id="headline">{escape(view.headline)}</div>'
        )
    today, month = escape(view.billed_today), escape(view.billed_month)
    parts += [
        "<h2>Billed audio (UTC)</h2>",
        f'<div class="billed"><div>Today: <strong id="billed-today">{today}</strong></div>'
        f'<div>This month: <strong id="billed-month">{month}</strong></div></div>',
        *(["<h2>Budgets</h2>", _cards((_budget_card(line) for line in view.budgets), "")]
          if view.budgets else []),
        *(_hosts_section(hosts) if hosts is not None else []),
        "<h2>Inboxes</h2>",
        _cards((_inbox_card(line) for line in view.inboxes), "No inbox has been scanned yet."),
        "<h2>In flight</h2>",
        _cards((_in_flight_card(line) for line in view.in_flight), "Nothing is being transcribed right now."),
        "<h2>Recently failed</h2>",
        _cards((_finished_card(line, True) for line in view.recent_failed), "No failures."),
        "<h2>Recently done</h2>",
        _cards((_finished_card(line, False) for line in view.recent_done), "None yet."),
    ]  # fmt: skip
    if view.counts:
        jobs = ", ".join(f"{escape(state)} {count}" for state, count in view.counts)
        parts.append(f'<p class="muted">Jobs in the journal: {jobs}.</p>')
    parts.append(
        f'<p class="muted">Refreshes every {int(view.refresh_s)} s. The same data as JSON: '
        '<a href="/api/status">/api/status</a>; metrics: <a href="/metrics">/metrics</a>.</p>'
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"

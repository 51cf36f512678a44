"""``/metrics`` of the real service, parsed as Prometheus parses it, following real work; and the shipped
Grafana dashboard and alert rules name only metrics that a live scrape serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone
from tests.support.s3 import unused_port
from tests.support.service import Layout, ServiceProcess, wait_for

REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> tuple[Samples, set[str]]:
    """Every sample by (name, labels), and every name a query may use for the families served."""
    reply = httpx.get(f"{base}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for family in text_string_to_metric_families(reply.text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, names


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def start_with_listener(layout: Layout, services: list[ServiceProcess]) -> str:
    port = unused_port()
    layout.data["web"] = {"listen": f"127.0.0.1:{port}"}
    layout.write()
    services.append(ServiceProcess(layout.config).wait_started())
    return f"http://127.0.0.1:{port}"


def test_metrics_follow_real_work(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    base = start_with_listener(layout, services)
    inbox = str(layout.inbox)
    before, names = scrape(base)
    assert value(before, "dropscribe_inbox_up", inbox=inbox) == 1
    assert value(before, "dropscribe_paused") == 0
    assert value(before, "dropscribe_files_total", inbox=inbox, outcome="done") == 0
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert "dropscribe_budget_remaining_seconds" in names  # declared before budgets exist

    make_tone(layout.inbox / "a.wav", seconds=2.0, fmt="wav")
    wait_for(lambda: (layout.done / "a.wav").exists())
    wait_for(lambda: value(scrape(base)[0], "dropscribe_files_total", inbox=inbox, outcome="done") == 1)
    after, _ = scrape(base)
    billed = total(
        after, "dropscribe_audio_seconds_billed_total", backend="dashscope", model="qwen3-asr-flash"
    )
    assert billed > 0
    count = value(after, "dropscribe_request_seconds_count", backend="dashscope", model="qwen3-asr-flash")
    assert count >= 1
    assert value(after, "dropscribe_request_seconds_sum", backend="dashscope", model="qwen3-asr-flash") > 0
    assert value(after, "dropscribe_request_seconds_bucket", backend="dashscope", model="qwen3-asr-flash",
                 le="+Inf") == count  # fmt: skip
    for state in ("waiting", "settling", "held", "over_budget", "in_flight"):
        assert ("dropscribe_queue_files", frozenset({("inbox", inbox), ("state", state)})) in after

    # the same bytes again are served by the stored result: counted as reused, nothing more billed
    (layout.inbox / "again.wav").write_bytes((layout.done / "a.wav").read_bytes())
    # and text renamed as audio fails at once with its code
    (layout.inbox / "notes.mp3").write_bytes(b"these are meeting notes, not audio\n" * 20)
    wait_for(lambda: (layout.done / "again.wav").exists() and (layout.failed / "notes.mp3").exists())

    def settled() -> Samples | None:
        now, _ = scrape(base)
        reused = value(now, "dropscribe_files_total", inbox=inbox, outcome="reused")
        failed = value(now, "dropscribe_files_total", inbox=inbox, outcome="failed")
        return now if reused == 1 and failed == 1 else None

    final: Samples = wait_for(settled)
    assert value(final, "dropscribe_files_total", inbox=inbox, outcome="done") == 1
    assert value(final, "dropscribe_failures_total", code="not_audio") == 1
    assert total(final, "dropscribe_audio_seconds_billed_total") == billed
    assert (
        value(final, "dropscribe_request_seconds_count", backend="dashscope", model="qwen3-asr-flash")
        == count
    )


def _metric_names(expressions: list[str]) -> set[str]:
    names: set[str] = set()
    for expr in expressions:
        # label names inside {…} and by (…) are not metric names
        bare = re.sub(r"\{[^}]*\}", "", expr)
        bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
        names.update(re.findall(r"\b((?:dropscribe|process|python)_[a-z0-9_]+)\b", bare))
    return names


def test_dashboard_and_alerts_use_only_metrics_a_live_scrape_serves(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    dashboard = json.loads((REPO / "docs/grafana/dropscribe.json").read_text(encoding="utf-8"))
    alerts = yaml.safe_load((REPO / "docs/grafana/alerts.yaml").read_text(encoding="utf-8"))
    panel_exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    alert_exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Throughput (files per minute)", "Failures by code (per hour)", "Recognition request latency",
            "Queue depth by state", "Paused", "Inbox up"} <= titles  # fmt: skip
    assert {rule["alert"] for group in alerts["groups"] for rule in group["rules"]} >= {
        "DropscribePaused", "DropscribeInboxDown", "DropscribeQueueStuck", "DropscribeFailureRate",
    }  # fmt: skip
    used = _metric_names(panel_exprs + alert_exprs)
    assert "dropscribe_request_seconds_bucket" in used  # quantiles come from the histogram

    base = start_with_listener(layout, services)
    _, served = scrape(base)
    assert sorted(used - served) == []

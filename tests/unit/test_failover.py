"""Which backend a folder's next file goes to, on plain health values."""

from __future__ import annotations

from dropscribe.core.failover import (
    Choice,
    Health,
    after_failure,
    after_pause,
    after_success,
    choose,
    is_down,
    probe_spent,
)
from dropscribe.core.rules import effective_rules
from dropscribe.core.ruleset import RuleSet

AFTER_S = 300.0


def test_a_folder_without_a_fallback_never_goes_elsewhere() -> None:
    down = {"dashscope": Health(failing_since=0.0, paused=True)}

    assert choose("dashscope", None, AFTER_S, down, now=10_000.0) == Choice("dashscope")


def test_a_fallback_equal_to_the_primary_is_no_fallback() -> None:
    down = {"local": Health(failing_since=0.0, probe_at=1e9)}

    assert choose("local", "local", AFTER_S, down, now=10_000.0) == Choice("local")


def test_transient_failures_shorter_than_failover_after_s_keep_the_primary() -> None:
    health = {"dashscope": Health(failing_since=100.0, probe_at=1e9)}

    assert choose("dashscope", "local", AFTER_S, health, now=399.9) == Choice("dashscope")
    assert choose("dashscope", "local", AFTER_S, health, now=400.0) == Choice("local", failed_over=True)


def test_a_pause_fails_over_at_once() -> None:
    health = {"dashscope": after_pause(Health(), now=50.0, probe_s=60.0)}

    assert is_down(health["dashscope"], AFTER_S, now=50.0)
    assert choose("dashscope", "local", AFTER_S, health, now=50.0) == Choice("local", failed_over=True)


def test_a_paused_fallback_is_not_used() -> None:
    health = {"dashscope": Health(failing_since=0.0, paused=True, probe_at=1e9), "local": Health(paused=True)}

    assert choose("dashscope", "local", AFTER_S, health, now=10.0) == Choice("dashscope")


def test_while_failed_over_one_file_per_probe_interval_tries_the_primary() -> None:
    state = after_failure(Health(), now=0.0, probe_s=60.0)
    sent = []
    for tick in range(0, 1000, 5):  # a file every 5 s for 1000 s
        now = float(tick)
        choice = choose("dashscope", "local", AFTER_S, {"dashscope": state}, now)
        if choice.probe:
            state = probe_spent(state, now, 60.0)
        sent.append((now, choice))
    probes = [now for now, choice in sent if choice.probe]
    assert all(choice == Choice("dashscope") for now, choice in sent if now < AFTER_S)
    assert probes == [300.0, 360.0, 420.0, 480.0, 540.0, 600.0, 660.0, 720.0, 780.0, 840.0, 900.0, 960.0]


def test_one_answer_ends_the_failover() -> None:
    state = after_pause(after_failure(Health(), 0.0, 60.0), 10.0, 60.0)
    state = after_success(now=500.0)

    assert not is_down(state, AFTER_S, now=500.0)
    assert state.last_success == 500.0
    assert choose("dashscope", "local", AFTER_S, {"dashscope": state}, now=501.0) == Choice("dashscope")


def test_a_failing_streak_keeps_its_start() -> None:
    state = after_failure(after_failure(Health(), 10.0, 60.0), 200.0, 60.0)

    assert state.failing_since == 10.0
    assert state.probe_at == 260.0


def test_a_file_begun_on_a_backend_stays_there() -> None:
    health = {"dashscope": Health(failing_since=0.0, paused=True)}

    assert choose("dashscope", "local", AFTER_S, health, now=999.0, begun_on="dashscope") == Choice(
        "dashscope"
    )


def test_the_nearest_layer_sets_fallback_and_failover_after_s() -> None:
    layers = [
        RuleSet(fallback_backend="local", failover_after_s=60.0),
        RuleSet(),
        RuleSet(failover_after_s=2.0),
    ]

    rules = effective_rules(layers, default_model="m")

    assert (rules.fallback_backend, rules.failover_after_s) == ("local", 2.0)
    assert effective_rules([RuleSet()], default_model="m").fallback_backend is None
    assert effective_rules([RuleSet()], default_model="m").failover_after_s == 300.0

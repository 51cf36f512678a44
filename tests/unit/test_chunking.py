"""Cut planning for long audio: spans fit a request, cover the file, and fall in pauses."""

import itertools
import random
from collections.abc import Sequence

import pytest

from dropscribe.core.chunking import SEARCH_FRACTION, ChunkPlanner, plan_chunks, refused_for_length

WINDOW = 0.1
LOUD = 0.3


def profile(duration_s: float, pauses: Sequence[tuple[float, float]], level: float = LOUD) -> list[float]:
    """Energies of a steady sound at ``level`` with silence in ``pauses`` ((start_s, end_s) pairs)."""
    count = round(duration_s / WINDOW)
    energies = [level] * count
    for start, end in pauses:
        for i in range(round(start / WINDOW), min(count, round(end / WINDOW))):
            energies[i] = 0.0
    return energies


def cuts(spans: list[tuple[float, float]]) -> list[float]:
    return [end for _, end in spans[:-1]]


class TestShortAudio:
    def test_audio_within_the_limit_is_one_span(self) -> None:
        """Nothing is split when the whole file fits one request."""
        assert plan_chunks(profile(120, []), WINDOW, 120.0, 180.0) == [(0.0, 120.0)]

    def test_audio_exactly_at_the_limit_is_one_span(self) -> None:
        """The limit is inclusive."""
        assert plan_chunks(profile(180, []), WINDOW, 180.0, 180.0) == [(0.0, 180.0)]

    def test_no_audio_gives_no_spans(self) -> None:
        """A zero-length file has nothing to send."""
        assert plan_chunks([], WINDOW, 0.0, 180.0) == []


class TestWhereToCut:
    def test_cut_goes_in_the_middle_of_a_pause_in_the_last_third(self) -> None:
        """A pause between 120 s and 180 s is where the first chunk ends."""
        spans = plan_chunks(profile(300, [(149.5, 150.5)]), WINDOW, 300.0, 180.0)
        assert cuts(spans) == [150.0]

    def test_pauses_before_the_last_third_are_not_used(self) -> None:
        """An early pause would make a short chunk; without a late one the cut is hard at the limit."""
        spans = plan_chunks(profile(300, [(59.5, 60.5)]), WINDOW, 300.0, 180.0)
        assert cuts(spans) == [180.0]

    def test_the_longest_pause_wins_over_a_short_one(self) -> None:
        """A sentence break beats a breath, even when the breath comes later."""
        energies = profile(300, [(129.0, 131.0), (169.8, 170.0)])
        assert cuts(plan_chunks(energies, WINDOW, 300.0, 180.0)) == [130.0]

    def test_among_equal_pauses_the_later_one_wins(self) -> None:
        """Longer chunks mean fewer requests and more context in each."""
        energies = profile(300, [(129.5, 130.5), (159.5, 160.5)])
        assert cuts(plan_chunks(energies, WINDOW, 300.0, 180.0)) == [160.0]

    def test_continuous_sound_is_cut_hard_at_the_limit(self) -> None:
        """Music or a hum has no pause: every chunk is as long as allowed."""
        spans = plan_chunks(profile(500, []), WINDOW, 500.0, 180.0)
        assert spans == [(0.0, 180.0), (180.0, 360.0), (360.0, 500.0)]

    def test_a_dip_that_is_not_a_pause_is_ignored(self) -> None:
        """Energy falling only to 80 % of the rest is still one continuous sound."""
        energies = profile(300, [])
        for i in range(1400, 1410):
            energies[i] = LOUD * 0.8
        assert cuts(plan_chunks(energies, WINDOW, 300.0, 180.0)) == [180.0]

    def test_noisy_silence_still_counts_as_one_pause(self) -> None:
        """The faint noise a lossy codec leaves in a pause does not split it into many."""
        rng = random.Random(7)
        energies = profile(300, [])
        for i in range(1300, 1320):  # 130 s to 132 s
            energies[i] = rng.uniform(0.00001, 0.0005)
        energies[1690] = 0.000001  # a single deeper but tiny dip later on
        assert cuts(plan_chunks(energies, WINDOW, 300.0, 180.0)) == [131.0]

    def test_pauses_relative_to_a_quiet_recording(self) -> None:
        """A quiet speaker's pauses are found relative to the recording, not to full scale."""
        energies = profile(300, [], level=0.01)
        for i in range(1495, 1505):
            energies[i] = 0.002
        assert cuts(plan_chunks(energies, WINDOW, 300.0, 180.0)) == [150.0]

    def test_a_tiny_last_chunk_is_avoided(self) -> None:
        """A pause that would leave a few seconds for the last request is passed over."""
        energies = profile(185, [(139.5, 140.5), (177.5, 178.5)])
        assert cuts(plan_chunks(energies, WINDOW, 185.0, 180.0)) == [140.0]

    def test_missing_energies_fall_back_to_a_hard_cut(self) -> None:
        """Without measurements for the search stretch, the limit is the only safe cut."""
        assert cuts(plan_chunks(profile(100, []), WINDOW, 300.0, 180.0)) == [180.0]

    def test_cuts_in_long_audio_each_land_in_a_pause(self) -> None:
        """An hour of speech with a pause every 25 s is cut only in pauses."""
        pauses = [(t - 0.6, t) for t in range(25, 3600, 25)]
        spans = plan_chunks(profile(3600, pauses), WINDOW, 3600.0, 180.0)
        for cut in cuts(spans):
            assert any(a <= cut <= b for a, b in pauses), cut

    def test_the_same_input_gives_the_same_plan(self) -> None:
        """Planning is deterministic, so a restarted job cuts where the first attempt did."""
        energies = profile(1000, [(t - 0.4, t) for t in range(7, 1000, 13)])
        assert plan_chunks(energies, WINDOW, 1000.0, 180.0) == plan_chunks(
            list(energies), WINDOW, 1000.0, 180.0
        )


class TestArguments:
    @pytest.mark.parametrize(
        ("window_s", "duration_s", "chunk_max_s", "min_chunk_s"),
        [(0.0, 10.0, 180.0, 10.0), (0.1, -1.0, 180.0, 10.0), (0.1, 10.0, 0.0, 10.0),
         (0.1, 10.0, 180.0, -1.0), (0.1, float("nan"), 180.0, 10.0)],
    )  # fmt: skip
    def test_nonsense_is_refused(
        self, window_s: float, duration_s: float, chunk_max_s: float, min_chunk_s: float
    ) -> None:
        """Impossible sizes are a caller's bug, reported at once."""
        with pytest.raises(ValueError, match="must be"):
            plan_chunks([], window_s, duration_s, chunk_max_s, min_chunk_s=min_chunk_s)


# one profile per seed: a failure names its seed, and 120 of them draw every shape with every kind of
# minimum chunk and every window (checked below) at a third of the time 400 took
PROFILE_SEEDS = range(20260101, 20260101 + 120)


class TestProperties:
    def test_random_profiles_give_valid_plans(self) -> None:
        """Whatever the energies: spans are contiguous, cover everything and respect the limit."""
        drawn: set[tuple[str, str]] = set()
        for seed in PROFILE_SEEDS:
            rng = random.Random(seed)
            window = rng.choice([0.02, 0.05, 0.1, 0.25, 1.0])
            chunk_max = rng.uniform(5.0, 300.0)
            duration = rng.choice([rng.uniform(0.0, chunk_max), rng.uniform(0.0, 20 * chunk_max)])
            count = round(duration / window) + rng.randint(-3, 3)
            shape = rng.choice(["noise", "pauses", "flat", "silent"])
            energies = [
                {"noise": rng.random(), "pauses": LOUD if rng.random() > 0.05 else 0.0,
                 "flat": LOUD, "silent": 0.0}[shape]
                for _ in range(max(0, count))
            ]  # fmt: skip
            min_chunk = rng.choice([0.0, 1.0, 10.0, chunk_max])
            drawn |= {(shape, "max" if min_chunk == chunk_max else str(min_chunk)), ("window", str(window))}

            spans = plan_chunks(energies, window, duration, chunk_max, min_chunk_s=min_chunk)

            if duration == 0:
                assert spans == [], seed
                continue
            assert spans[0][0] == 0.0, seed
            assert spans[-1][1] == duration, seed
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert end == start, seed
            for start, end in spans:
                assert 0 < end - start <= chunk_max + 1e-9, seed
            for start, end in spans[:-1]:
                assert end - start >= chunk_max * (1 - SEARCH_FRACTION) - 1e-9, seed
        kinds = {(shape, kind) for shape in ("noise", "pauses", "flat", "silent")
                 for kind in ("0.0", "1.0", "10.0", "max")}  # fmt: skip
        windows = {("window", str(w)) for w in (0.02, 0.05, 0.1, 0.25, 1.0)}
        assert kinds | windows <= drawn, "the seeds no longer draw every case"


def planned_in_pieces(
    energies: Sequence[float], duration_s: float, chunk_max_s: float, sizes: Sequence[int],
    *, min_chunk_s: float = 10.0, start_s: float = 0.0,
) -> tuple[list[tuple[float, float]], list[int]]:  # fmt: skip
    """The incremental plan fed ``sizes`` windows at a time, and after which feed each span came."""
    planner = ChunkPlanner(WINDOW, chunk_max_s, min_chunk_s=min_chunk_s, start_s=start_s)
    spans: list[tuple[float, float]] = []
    decided_at: list[int] = []
    at = 0
    for size in itertools.cycle(sizes):
        if at >= len(energies):
            break
        new = planner.feed(energies[at : at + size])
        at += size
        spans += new
        decided_at += [min(at, len(energies))] * len(new)
    spans += planner.finish(duration_s)
    return spans, decided_at


class TestIncrementalPlanner:
    def test_same_plan_as_the_whole_profile(self) -> None:
        """Fed in any pieces, the planner cuts exactly where the plan over the whole profile does."""
        rng = random.Random(7)
        for _ in range(150):
            chunk_max = rng.uniform(20.0, 120.0)
            duration = round(rng.uniform(0.0, 12 * chunk_max), 1)
            count = round(duration / WINDOW)
            energies = [LOUD if rng.random() > 0.04 else 0.0 for _ in range(count)]
            min_chunk = rng.choice([0.0, 1.0, 10.0])
            sizes = [rng.randint(1, 50) for _ in range(5)]

            whole = plan_chunks(energies, WINDOW, count * WINDOW, chunk_max, min_chunk_s=min_chunk)
            pieces, _ = planned_in_pieces(energies, count * WINDOW, chunk_max, sizes, min_chunk_s=min_chunk)

            assert pieces == whole

    def test_a_span_is_decided_once_the_audio_reaches_its_limit_plus_the_minimum(self) -> None:
        """The first chunk can go long before the file has been read to its end."""
        energies = profile(3600.0, [(t - 0.5, t) for t in range(5, 3600, 5)])

        spans, decided_at = planned_in_pieces(energies, 3600.0, 60.0, [10])

        assert spans == plan_chunks(energies, WINDOW, 3600.0, 60.0)
        assert decided_at[0] * WINDOW <= 60.0 + 10.0 + 1.0
        for (start, _), at in zip(spans, decided_at, strict=False):
            assert at * WINDOW <= start + 60.0 + 10.0 + 1.0

    def test_a_restart_from_a_recorded_cut_continues_the_same_plan(self) -> None:
        """Spans already recorded stay; the rest is derived again and matches the first run."""
        energies = profile(900.0, [(t - 0.7, t) for t in range(7, 900, 7)])
        first = plan_chunks(energies, WINDOW, 900.0, 60.0)

        for keep in (1, 3, len(first) - 1, len(first)):
            rest, _ = planned_in_pieces(energies, 900.0, 60.0, [33], start_s=first[keep - 1][1])
            assert first[:keep] + rest == first

    def test_memory_holds_only_the_current_span(self) -> None:
        """Hours of audio: the planner keeps about one span of windows, not the whole profile."""
        planner = ChunkPlanner(WINDOW, 60.0)
        for _ in range(10 * 3600):
            planner.feed([LOUD] * 10)
            assert len(planner._kept) <= (60.0 + 10.0) / WINDOW + 10

    def test_nonsense_start_is_refused(self) -> None:
        with pytest.raises(ValueError, match="start_s"):
            ChunkPlanner(WINDOW, 60.0, start_s=-1.0)
        with pytest.raises(ValueError, match="duration_s"):
            ChunkPlanner(WINDOW, 60.0).finish(float("nan"))


class TestLengthRefusal:
    @pytest.mark.parametrize(
        ("code", "message"),
        [
            ("BadRequest.TooLarge", "Payload Too Large."),
            ("InvalidParameter", "The audio duration 61.20 s exceeds the maximum of 40 s for model 'x'."),
            ("InvalidParameter", "Audio duration is too long"),
        ],
    )
    def test_size_and_duration_refusals_earn_a_shorter_plan(self, code: str, message: str) -> None:
        assert refused_for_length(code, message)

    @pytest.mark.parametrize(
        ("code", "message"),
        [
            ("InvalidParameter", "Parameter 'language' value 'xx' is not a supported language code."),
            ("InvalidParameter.DataInspection", "The media format is not supported."),
            ("BadRequest.UnsupportedFileFormat", "duration exceeds nothing here, wrong code"),
        ],
    )
    def test_other_refusals_do_not(self, code: str, message: str) -> None:
        assert not refused_for_length(code, message)

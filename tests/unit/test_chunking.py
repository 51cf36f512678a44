"""Cut planning for long audio: spans fit a request, cover the file, and fall in pauses."""

import itertools
import random
from collections.abc import Sequence

import pytest

from dropscribe.core.chunking import SEARCH_FRACTION, plan_chunks

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


class TestProperties:
    def test_random_profiles_give_valid_plans(self) -> None:
        """Whatever the energies: spans are contiguous, cover everything and respect the limit."""
        rng = random.Random(20260101)
        for _ in range(400):
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

            spans = plan_chunks(energies, window, duration, chunk_max, min_chunk_s=min_chunk)

            if duration == 0:
                assert spans == []
                continue
            assert spans[0][0] == 0.0
            assert spans[-1][1] == duration
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert end == start
            for start, end in spans:
                assert 0 < end - start <= chunk_max + 1e-9
            for start, end in spans[:-1]:
                assert end - start >= chunk_max * (1 - SEARCH_FRACTION) - 1e-9

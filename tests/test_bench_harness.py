"""The benchmark harness: per-pair ratio ranges, ~50 ms samples, the reproduced-or-not verdict (#18)."""

from __future__ import annotations

import json
import time

import pytest

from benchmarks import common, reproduce


@pytest.fixture(autouse=True)
def _small_settle(monkeypatch):
    monkeypatch.setattr(common, "SETTLE_GB", 0.01)  # the harness touches 3 GB before timing; not in a test


def test_ratio_is_the_middle_mean_of_the_rounds_ratios_with_their_range_and_is_recorded():
    common.RATIOS.clear()
    # rounds 2/1, 100/10, 50/2: ratios 2, 10, 25 -> 10; the ratio of medians (50 / 2 = 25) would let the round
    # where the machine was slow for both sides (100 / 10) pull one side's median alone
    assert common.ratio([2, 100, 50], [1, 10, 2], key="k") == "10× (2–25)"
    assert common.RATIOS.pop("k") == {"median": 10.0, "min": 2.0, "max": 25.0, "pairs": 3, "paired": True}
    assert common.ratio([3.0], [2.0]) == "1.50× (one pair)"
    # sides run a different number of times (cold starts): ratio of medians, every pair in the range
    assert sorted(common.pair_ratios([6.0], [1.0, 2.0, 3.0])) == [2.0, 3.0, 6.0]
    assert common.ratio([6.0], [1.0, 2.0, 3.0], key="u") == "3.00× (2.00–6.00)"
    assert common.RATIOS.pop("u")["paired"] is False
    # 5 or more unpaired runs: their mean without the fastest and the slowest (a two-mode spread, one stray run)
    assert common.middle_mean([30, 31, 48, 50, 400]) == 43.0
    assert common.ratio([43.0, 43.0], [30, 31, 48, 50, 400]) == "1.00× (0.11–1.43)"
    # 5 or more rounds: the mean of the middle 80 % of their ratios (two modes of process speed average out)
    # rounds 1, 1, 1, 2, 2 and one stray 200: the stray and one 1 dropped, mean of 1, 1, 2, 2
    assert common.ratio([2, 2, 2, 2, 2, 2], [2, 2, 2, 1, 1, 0.01], key="m") == "1.50× (1.00–200.00)"
    assert common.RATIOS.pop("m")["median"] == 1.5


def test_alternate_repeats_a_short_call_within_a_sample_and_flips_the_order():
    order = []

    def fast():
        order.append("a")

    def slow():
        order.append("b")
        time.sleep(0.06)

    times = common.alternate({"a": fast, "b": slow}, 2)
    cap = common.MAX_NUMBER
    assert times.number["b"] == 1 and times.number["a"] == cap  # a no-op is repeated (capped)
    assert len(times["a"]) == len(times["b"]) == 2
    assert times["b"][0] >= 0.06 and times["a"][0] < 0.01  # seconds per call, not per sample
    # warm-ups a, b; then round 0: a×cap, b; round 1: b, a×cap (the order flips so drift hits both sides)
    assert order[2:] == ["a"] * cap + ["b", "b"] + ["a"] * cap


def test_a_short_call_is_sampled_over_about_as_long_as_the_slow_side():
    def short():
        time.sleep(0.002)

    def slow():
        time.sleep(0.2)

    times = common.alternate({"a": short, "b": slow}, 1)
    # ~0.2 s / 2 ms calls: both samples of a round span about the same stretch of the machine's drift
    assert 40 <= times.number["a"] <= 100 and times.number["b"] == 1
    # a slow side that is not warmed (pysal's 8 s test): the span is given
    times = common.alternate({"a": short, "b": slow}, 1, warm=("a",), span=0.1)
    assert 20 <= times.number["a"] <= 50


@pytest.mark.parametrize(
    ("new", "ok"),
    [(12.4, True), (7.6, True), (13.0, True), (13.8, False), (7.4, False)],
)
def test_reproduced_within_25_percent_or_inside_the_recorded_range(new, ok):
    recorded = {"median": 10.0, "min": 8.0, "max": 13.0}
    assert reproduced_value(recorded, new) is ok


def reproduced_value(rec, median):
    return reproduce.reproduced(rec, {"median": median, "min": median, "max": median})


def test_check_compares_runs_of_the_same_mode(tmp_path, capsys, monkeypatch):
    def run(mode, r):
        return {"when": "t", "mode": mode, "load": [1.0], "ratios": {"x": {"median": r, "min": r, "max": r}}}

    (tmp_path / "indices.ratios.json").write_text(json.dumps([run("quick", 10.0), run("full", 99.0), run("quick", 12)]))
    assert reproduce.report(tmp_path, None, ["indices"], "quick") is True
    (tmp_path / "indices.ratios.json").write_text(json.dumps([run("quick", 10.0), run("quick", 20.0)]))
    assert reproduce.report(tmp_path, None, ["indices"], "quick") is False
    assert "not reproduced: indices: x" in capsys.readouterr().out
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    common.record_ratios("mvt", {"y": {"median": 2.0, "min": 1.9, "max": 2.1, "pairs": 3}})
    assert json.loads((tmp_path / "mvt.ratios.json").read_text())[-1]["ratios"]["y"]["median"] == 2.0
    assert "Recorded once so far" in reproduce.readme_section(tmp_path)


def test_alternate_freezes_set_up_objects_and_collects_before_each_sample():
    import gc

    kept = [[i] for i in range(10_000)]  # set-up objects alive across the timing
    seen = []

    def call():
        seen.append((gc.get_freeze_count(), gc.get_count()[0]))

    common.alternate({"a": call}, 3, warm=False, number=1)
    assert all(frozen >= len(kept) for frozen, _ in seen)  # the collector does not walk them during a sample
    assert all(young < 50 for _, young in seen)  # collected just before each sample
    assert gc.get_freeze_count() == 0  # and given back afterwards


def test_wait_for_quiet_measures_the_machine_and_records_it():
    busy = common.busy_fraction(0.2)
    assert 0.0 <= busy <= 1.0
    common.wait_for_quiet(0)  # no waiting: still measured and recorded beside the next module's ratios
    assert len(common.BUSY_AT_START) == 1 and 0.0 <= common.BUSY_AT_START[0] <= 1.0


def test_settle_memory_touches_fresh_memory_once_in_a_while(monkeypatch):
    monkeypatch.setattr(common, "_settled", [-1e9])
    assert common.settle_memory(0.01) > 0  # touched and freed
    assert common.settle_memory(0.01) == 0.0  # not again within fresh_for seconds
    assert common.settle_memory(0.01, fresh_for=0) > 0


def test_settle_each_settles_memory_right_before_every_sample(monkeypatch):
    events = []
    monkeypatch.setattr(common, "settle_memory", lambda gb=None, fresh_for=20.0: events.append(("settle", fresh_for)))
    calls = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    common.alternate(calls, 2, warm=False, number=1, settle_each=True)
    # the series' settle, then one forced settle before each of the 4 samples (a, b, b, a)
    assert events == [("settle", 20.0)] + [x for s in "abba" for x in (("settle", 0), s)]
    events.clear()
    common.alternate(calls, 2, warm=False, number=1)
    assert events == [("settle", 20.0), "a", "b", "b", "a"]


def test_pooled_spreads_rounds_over_fresh_processes_and_joins_them_in_order(monkeypatch):
    seen = []

    def child(script, *args, timeout):
        seen.append(args)
        return {"ours": [len(seen)] * args[-1], "n": len(seen)}

    monkeypatch.setattr(common, "child", child)
    got = common.pooled("script", 8, "d_test", processes=8)
    assert got == {"ours": [1, 2, 3, 4, 5, 6, 7, 8], "n": 1} and seen[0] == ("d_test", 1)
    seen.clear()
    assert common.pooled("script", 2, processes=8)["ours"] == [1, 2]  # no more processes than rounds
    # nested per-place results (local's warm rounds): lists joined at any depth, other values from the first
    monkeypatch.setattr(
        common, "child", lambda script, *args, timeout: {"p": {"times": {"a": [args[-1]]}, "number": 3}}
    )
    assert common.pooled("script", 4, processes=2) == {"p": {"times": {"a": [2, 2]}, "number": 3}}

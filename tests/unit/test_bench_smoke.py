"""The benchmark's pure helpers: percentiles, tables, timelines, summary rows (no timings)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.__main__ import parse_args, summary_rows  # noqa: E402
from bench.common import format_table, one_line, percentile, ratio, summarize, timeline_gaps, verdict  # noqa: E402
from bench.e2e import compose_file  # noqa: E402


def test_percentile_interpolates_like_numpy():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == 2.5
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 4.0
    assert percentile(xs, 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_summarize_and_ratio():
    s = summarize([0.3, 0.1, 0.2])
    assert (s["n"], s["p50"], s["min"], s["max"]) == (3, 0.2, 0.1, 0.3)
    assert summarize([])["n"] == 0
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None and ratio(math.nan, 1.0) is None
    assert verdict(1.0, 1.1) == "met" and verdict(1.2, 1.1) == "NOT met" and verdict(None, 1) == "n/a"


def test_format_table_aligns_and_flattens_errors():
    text = format_table(["mode", "s"], [["veo", 1.23456], ["raw x1", None], ["x", "boom\nline 2"]], 2)
    lines = text.splitlines()
    assert lines[0].split() == ["mode", "s"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].endswith("1.23") and lines[3].endswith("-")
    assert "boom ..." in lines[4] and len(lines) == 5
    assert len(one_line("x" * 500)) == 110


def test_timeline_gaps():
    ms = 1_000_000
    events = [("create", 0), ("start", 400 * ms), ("create", 450 * ms), ("start", 900 * ms)]
    gaps = timeline_gaps(reversed(events))  # order does not matter, times do
    assert gaps["create_to_start"] == pytest.approx([0.4, 0.45])
    assert gaps["start_to_next_create"] == pytest.approx([0.05])


def test_compose_file_quotes_command_words():
    text = compose_file(2, "c0")
    assert '"3600"' in text and "c0-01:" in text and text.count("network_mode: none") == 2


def test_args_and_summary_rows():
    args = parse_args(["--quick", "--only", "e2e", "--only", "restart"])
    assert args.quick and args.only == ["e2e", "restart"]
    results = {
        "placement": {"error": "bench.placement is not available yet"},
        "e2e": {"sizes": [{"services": 4, "median_s": {"veo": 2.0, "raw x1": 1.9, "raw x4": 1.0,
                                                        "compose": None},
                           "errors": {"compose": "not installed"}, "fastest_raw": "raw x4",
                           "ratio_veo_fastest_raw": 2.0, "ratio_veo_compose": None,
                           "paired_ratio_veo_fastest_raw": 1.05, "target_ratio": 1.1}]},
        "restart": {"latency_s": {s: {"p50": 0.5, "p95": 0.6} for s in ("veo", "docker")},
                    "ratio_p50": 1.0, "ratio_p95": 1.0, "target_ratio": 1.5},
    }
    rows = summary_rows(results)
    flat = {r[0]: r for r in rows}
    assert flat["placement"][1].startswith("bench.placement")
    assert flat["e2e 4 services: compose"][1] == "not installed"
    assert flat["e2e 4: veo / fastest raw (raw x4), ratio of medians"][1] == "2.00"
    # the verdict is on the paired figure (the median of per-round ratios)
    assert flat["e2e 4: veo / fastest raw, paired (median of rounds)"][3] == "met"
    assert flat["e2e 4: veo / compose"][3] == "n/a"
    assert flat["restart ratio veo / docker p95"][3] == "met"


def test_summary_rows_show_the_machines_figures():
    res = {"machines": {"median_s": {"partition_to_running_elsewhere_s": 7.61, "heal_to_no_twin_s": 19.0}}}
    rows = summary_rows(res)
    assert ["machines: partition to running elsewhere (median)", "7.6 s", "-", "-"] in rows
    assert summary_rows({"machines": {"error": "boom"}}) == [["machines", "boom", "-", "-"]]
    assert "machines" in parse_args(["--only", "machines"]).only

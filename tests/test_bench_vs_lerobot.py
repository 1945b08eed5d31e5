"""benchmarks/bench_vs_lerobot.py's own arithmetic: ratios, medians and the table (no torch, no LeRobot)."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_vs_lerobot.py"
spec = importlib.util.spec_from_file_location("bench_vs_lerobot", SCRIPT)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


def test_ratio_reads_above_one_when_ours_is_ahead():
    assert bench.Row("samples/s", 20.0, 10.0).ratio == 2.0
    # Time: theirs ÷ ours, so 50 ms against 200 ms is 4× in our favour.
    assert bench.Row("ms", 50.0, 200.0, higher_is_better=False).ratio == 4.0
    assert bench.Row("ms", 50.0, None, higher_is_better=False).ratio is None


def test_per_second_uses_the_median_call():
    # 8 samples in a median 2 s; the stalled 10 s call does not count.
    assert bench.per_second(8, [1.0, 2.0, 10.0]) == 4.0


def test_throughput_rows_growth_and_cpu_cost():
    ours = {
        8: {"seconds": [1.0, 1.0], "cpu_seconds": [2.0, 2.0]},
        64: {"seconds": [4.0], "cpu_seconds": [8.0]},
    }
    theirs = {8: {"seconds": [2.0], "cpu_seconds": [4.0]}, 64: {"seconds": [8.0], "cpu_seconds": [32.0]}}
    rows = bench.throughput_rows("sample", [8, 64], ours, theirs)
    assert [r.name for r in rows] == [
        "sample/s, 8",
        "sample/s, 64",
        "growth 8 → 64",
        "CPU ms per sample, 8",
        "CPU ms per sample, 64",
    ]
    # samples/s 8 → 16 (ours) and 4 → 8 (theirs): both grow 2×; CPU 250 → 125 ms vs 500 → 500 ms.
    assert [(r.ours, r.theirs) for r in rows] == [
        (8.0, 4.0),
        (16.0, 8.0),
        (2.0, 2.0),
        (250.0, 500.0),
        (125.0, 500.0),
    ]
    assert [r.ratio for r in rows] == [2.0, 2.0, 1.0, 2.0, 4.0]


def test_markdown_table():
    rows = [bench.Row("train samples/s, batch 8", 9.375, 12.5), bench.Row("flow ms", 41.0, None, False)]
    assert bench.markdown_table("training", rows).splitlines() == [
        "| training | robopolicy | LeRobot | ratio (> 1×: ours ahead) |",
        "|---|---|---|---|",
        "| train samples/s, batch 8 | 9.4 | 12.5 | 0.75× |",
        "| flow ms | 41.0 | – | – |",
    ]

"""`robopolicy benchmark table`: the suite × recipe table of every finished `robopolicy benchmark` row.

Rows are the runs (recipe, plus `-seedN` for other training seeds); columns are the five suites, each
with success and its 95 % Wilson interval, then the average over spatial/object/goal/long as LIBERO
reports it and over spatial/object/goal. An average is shown only when all its suites have a row.
Writes OUT/benchmark_table.md and a grouped bar plot with the intervals, OUT/benchmark_table.png.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robopolicy.errors import UserError
from robopolicy.suite_benchmark import BenchmarkRow

SUITES = (
    "libero_style_spatial",
    "libero_style_object",
    "libero_style_goal",
    "libero_style_long",
    "libero_style_memory",
)
AVERAGES = {
    "avg spatial/object/goal/long": SUITES[:4],
    "avg spatial/object/goal": SUITES[:3],
}


@dataclass(frozen=True)
class BenchmarkTableConfig:
    """Collect every row.json under OUT into one table and plot.

    Attributes:
        out: the benchmark root (`robopolicy benchmark --out`); rows are OUT/SUITE/LABEL/row.json.
    """

    out: str = "runs/benchmark"


def load_rows(out: str | Path) -> list[BenchmarkRow]:
    """Every row under OUT, sorted by label and suite."""
    paths = sorted(Path(out).glob("*/*/row.json"))
    if not paths:
        raise UserError(
            f"{out}: no benchmark rows (OUT/SUITE/LABEL/row.json); run `robopolicy benchmark` first"
        )
    rows = []
    for path in paths:
        try:
            rows.append(BenchmarkRow.from_json(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: not a benchmark row ({e})") from None
    return sorted(rows, key=lambda r: (r.label, r.suite))


def _cell(successes: int, trials: int) -> str:
    from robopolicy.eval.stats import wilson_interval

    lo, hi = wilson_interval(successes, trials)
    return f"{successes / trials:.1%} [{lo:.0%}, {hi:.0%}]"


def table_markdown(rows: list[BenchmarkRow]) -> str:
    """The markdown table: one line per label, success [95 % Wilson] per suite and the averages.

    An average is the mean of the suites' rates (each suite weighs the same, as LIBERO averages)."""
    labels = sorted({r.label for r in rows})
    by_key = {(r.label, r.suite): r for r in rows}
    header = ["run", *(s.removeprefix("libero_style_") for s in SUITES), *AVERAGES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in labels:
        cells = [label]
        for suite in SUITES:
            r = by_key.get((label, suite))
            cells.append(_cell(r.successes, r.trials) if r else "–")
        for suites in AVERAGES.values():
            got = [by_key.get((label, s)) for s in suites]
            cells.append(f"{sum(r.rate for r in got) / len(got):.1%}" if all(got) else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table(rows: list[BenchmarkRow], path: Path) -> Path:
    """Grouped bars: suites on the x axis, one bar per label, Wilson 95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({r.label for r in rows})
    by_key = {(r.label, r.suite): r for r in rows}
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(SUITES), 3.6))
    for i, label in enumerate(labels):
        xs, ys, err = [], [], [[], []]
        for k, suite in enumerate(SUITES):
            r = by_key.get((label, suite))
            if r is None:
                continue
            lo, hi = r.wilson95
            xs.append(k - 0.4 + width * (i + 0.5))
            ys.append(r.rate)
            err[0].append(r.rate - lo)
            err[1].append(hi - r.rate)
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=label)
    ax.set_xticks(range(len(SUITES)), [s.removeprefix("libero_style_") for s in SUITES])
    ax.set_xlim(-0.5, len(SUITES) - 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (95% Wilson)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_table(config: BenchmarkTableConfig) -> tuple[Path, Path]:
    """Write OUT/benchmark_table.md (the table, then per-run descriptions) and OUT/benchmark_table.png."""
    rows = load_rows(config.out)
    out = Path(config.out)
    png = plot_table(rows, out / "benchmark_table.png")
    described = {r.label: r.description for r in rows}
    md = [
        "# Suite benchmark",
        "",
        table_markdown(rows),
        "",
        f"![suite × run]({png.name})",
        "",
        *(f"- **{label}**: {text}" for label, text in sorted(described.items())),
        "",
    ]
    md_path = out / "benchmark_table.md"
    md_path.write_text("\n".join(md))
    return md_path, png

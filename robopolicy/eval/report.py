"""`robopolicy report RESULTS.db OUT/`: a markdown and an HTML report of a results store.

Sections: runs; success per suite and per task (Wilson 95 % interval and Beta posterior);
success against training step with interval bands; per-task bars; pairwise paired comparisons
(exact McNemar, Holm-adjusted, P(A>B), letter groups); failure reasons; rollout videos.
"""

from __future__ import annotations

import html
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from robopolicy.errors import UserError
from robopolicy.eval.comparison import EvaluatedRun, failure_reason, load_runs, pairwise, summarize


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _rate_cells(episodes: list[dict]) -> list[str]:
    s = summarize(episodes)
    lo, hi = s.wilson
    mean, (blo, bhi) = s.posterior
    return [
        f"{s.successes}/{s.trials}",
        _pct(s.rate),
        f"{_pct(lo)}–{_pct(hi)}",
        f"{_pct(mean)} ({_pct(blo)}–{_pct(bhi)})",
    ]


_RATE_HEADER = ["success", "rate", "95% Wilson CI", "Beta posterior mean (95% CrI)"]


def suite_table(runs: list[EvaluatedRun]) -> Table:
    rows = []
    for r in runs:
        by_suite: dict[str, list[dict]] = defaultdict(list)
        for e in r.episodes:
            by_suite[e["suite"] or "(tasks)"].append(e)
        rows.extend([r.label, suite, *_rate_cells(eps)] for suite, eps in sorted(by_suite.items()))
    return Table("Success per suite", ["run", "suite", *_RATE_HEADER], rows)


def task_table(runs: list[EvaluatedRun]) -> Table:
    rows = []
    for r in runs:
        by_task: dict[str, list[dict]] = defaultdict(list)
        for e in r.episodes:
            by_task[e["task"]].append(e)
        rows.extend([r.label, task, *_rate_cells(eps)] for task, eps in sorted(by_task.items()))
    return Table("Success per task", ["run", "task", *_RATE_HEADER], rows)


def pairwise_table(runs: list[EvaluatedRun]) -> Table:
    table = pairwise(runs)
    rows = [
        [
            c.a,
            c.b,
            str(c.shared),
            _pct(c.a_rate.rate),
            _pct(c.b_rate.rate),
            f"{c.a_only} / {c.b_only}",
            f"{c.p_value:.3g}",
            f"{p:.3g}",
            f"{c.prob_a_better:.3f}",
        ]
        for c, p in zip(table.comparisons, table.adjusted, strict=True)
    ]
    letters = ", ".join(f"{name}: **{g}**" for name, g in table.letters.items())
    return Table(
        "Pairwise comparisons (paired on shared initial states and seeds)",
        [
            "A",
            "B",
            "shared episodes",
            "A rate",
            "B rate",
            "A only / B only",
            "McNemar exact p",
            "Holm p",
            "P(A>B)",
        ],
        rows,
        note=(
            "Runs that share a letter do not differ at family-wise α = 0.05 (Holm-corrected exact McNemar "
            f"tests). Letters, best run first: {letters}. P(A>B) is the posterior probability that A's "
            "success rate exceeds B's under a uniform Dirichlet prior on the paired outcomes."
        ),
    )


def failure_table(runs: list[EvaluatedRun]) -> Table:
    """Failures per run and task, by reason (`failure_reason`)."""
    rows = []
    for r in runs:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for e in r.episodes:
            if not e["success"]:
                counts[(e["task"], failure_reason(e["failure_reason"]))] += 1
        rows.extend(
            [r.label, task, reason, str(n)]
            for (task, reason), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1]))
        )
    return Table("Failure reasons", ["run", "task", "reason", "episodes"], rows)


def plot_training_curves(runs: list[EvaluatedRun], path: Path) -> Path:
    """Success against checkpoint step per training run and settings, with Wilson 95 % bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[tuple[int, EvaluatedRun]]] = defaultdict(list)
    for r in runs:
        settings = r.run.settings.get("name") or r.run.settings.get("mode", "")
        groups[f"{r.label.split('@')[0]} / {settings}"].append((r.run.checkpoint_step, r))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, points in sorted(groups.items()):
        points.sort(key=lambda p: p[0])
        steps = [s for s, _ in points]
        summaries = [summarize(r.episodes) for _, r in points]
        (line,) = ax.plot(steps, [s.rate for s in summaries], marker="o", label=name)
        lows, highs = [s.wilson[0] for s in summaries], [s.wilson[1] for s in summaries]
        if len(steps) > 1:
            ax.fill_between(steps, lows, highs, alpha=0.2, color=line.get_color())
        else:  # a band over one checkpoint has no width: show its interval as an error bar
            rate = summaries[0].rate
            ax.errorbar(
                steps,
                [rate],
                yerr=[[max(rate - lows[0], 0.0)], [max(highs[0] - rate, 0.0)]],
                capsize=4,
                color=line.get_color(),
            )
        for step, s in zip(steps, summaries, strict=True):
            ax.annotate(
                f"{s.successes}/{s.trials}",
                (step, s.rate),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=7,
            )
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("Success vs training step (95% Wilson bands)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_task_bars(runs: list[EvaluatedRun], path: Path) -> Path:
    """Per-task success bars per run, with Wilson 95 % error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = sorted({e["task"] for r in runs for e in r.episodes})
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) * max(1, len(runs)) / 2), 3.5))
    for k, r in enumerate(runs):
        rates, lows, highs = [], [], []
        for t in tasks:
            s = summarize([e for e in r.episodes if e["task"] == t])
            rate = 0.0 if s.trials == 0 else s.rate
            rates.append(rate)
            # Clipped: at 0 or n successes a Wilson bound equals the rate up to rounding, and matplotlib
            # rejects an error bar of -1e-17.
            lows.append(max(rate - s.wilson[0], 0.0) if s.trials else 0.0)
            highs.append(max(s.wilson[1] - rate, 0.0) if s.trials else 0.0)
        x = np.arange(len(tasks)) + k * width
        ax.bar(x, rates, width, yerr=[lows, highs], capsize=2, label=r.label)
        # k/n above each interval: a 0 % bar is otherwise invisible, and n says why the interval is wide.
        for xi, t, rate, high in zip(x, tasks, rates, highs, strict=True):
            ep = [e for e in r.episodes if e["task"] == t]
            ax.text(
                xi, rate + high + 0.02, f"{sum(e['success'] for e in ep)}/{len(ep)}", ha="center", fontsize=7
            )
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=20, ha="right", fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("success rate")
    ax.legend(fontsize=7)
    ax.set_title("Success per task (95% Wilson intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _videos(runs: list[EvaluatedRun], db: Path, out: Path) -> list[tuple[str, str, str]]:
    """Copy rollout videos next to the report: (run label, caption, relative path)."""
    found = []
    for r in runs:
        for e in r.episodes:
            if not e["video_path"]:
                continue
            src = Path(e["video_path"])
            src = src if src.is_absolute() else db.parent / src
            if not src.is_file():
                continue
            dst = out / "videos" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            verdict = "success" if e["success"] else f"failure: {e['failure_reason']}"
            caption = f"{e['task']} · init state {e['init_state_id']} · seed {e['seed']} · {verdict}"
            found.append((r.label, caption, f"videos/{src.name}"))
    return found


def _markdown_table(t: Table) -> str:
    lines = [f"## {t.title}", ""]
    if not t.rows:
        return "\n".join([*lines, "(none)", ""])
    lines.append("| " + " | ".join(t.header) + " |")
    lines.append("|" + "---|" * len(t.header))
    lines.extend("| " + " | ".join(row) + " |" for row in t.rows)
    if t.note:
        lines.extend(["", t.note])
    return "\n".join([*lines, ""])


def _html_table(t: Table) -> str:
    parts = [f"<h2>{html.escape(t.title)}</h2>"]
    if not t.rows:
        return parts[0] + "<p>(none)</p>"
    parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
    parts.extend("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    parts.append("</table>")
    if t.note:
        parts.append(f"<p>{html.escape(t.note).replace('**', '')}</p>")
    return "\n".join(parts)


def write_report(db: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write OUT/report.md and OUT/report.html (plus plots and videos); returns both paths."""
    db, out = Path(db), Path(out)
    runs = load_runs(db)
    if not runs:
        raise UserError(f"{db}: no finished episodes to report on")
    out.mkdir(parents=True, exist_ok=True)
    runs_table = Table(
        "Runs",
        ["run", "policy", "step", "settings", "code version", "episodes"],
        [
            [
                r.label,
                r.run.policy,
                str(r.run.checkpoint_step),
                r.run.settings.get("name") or r.run.settings["mode"],
                r.run.code_version[:12],
                str(len(r.episodes)),
            ]
            for r in runs
        ],
    )
    tables = [runs_table, suite_table(runs), task_table(runs), pairwise_table(runs), failure_table(runs)]
    curve = plot_training_curves(runs, out / "success_vs_step.png")
    bars = plot_task_bars(runs, out / "success_per_task.png")
    videos = _videos(runs, db, out)

    md = [f"# Evaluation report: {db.name}", ""]
    md.extend(_markdown_table(t) for t in tables[:3])
    md.extend(
        [
            "## Plots",
            "",
            f"![success vs training step]({curve.name})",
            "",
            f"![success per task]({bars.name})",
            "",
        ]
    )
    md.extend(_markdown_table(t) for t in tables[3:])
    md.extend(["## Rollout videos", ""])
    md.extend(f"- {label}: [{caption}]({rel})" for label, caption, rel in videos)
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    body = [f"<h1>Evaluation report: {html.escape(db.name)}</h1>"]
    body.extend(_html_table(t) for t in tables[:3])
    body.append(f'<h2>Plots</h2><img src="{curve.name}"><img src="{bars.name}">')
    body.extend(_html_table(t) for t in tables[3:])
    body.append("<h2>Rollout videos</h2>")
    body.extend(
        f'<figure><video controls width="320" src="{html.escape(rel)}"></video>'
        f"<figcaption>{html.escape(label)}: {html.escape(caption)}</figcaption></figure>"
        for label, caption, rel in videos
    )
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}figure{display:inline-block}"
    html_path = out / "report.html"
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>{style}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    return md_path, html_path

"""`robopolicy data info`: a dataset's schema, episode and step counts, tasks and action/state statistics."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from jaxtyping import Float

from robopolicy.data.dataset_sources import open_dataset

STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")


def per_dim_stats(x: Float[np.ndarray, "n d"]) -> dict[str, list[float]]:
    """Mean, std (population), min, max and the 1 % / 99 % quantiles (linear interpolation) of each column."""
    x = np.asarray(x, np.float64)
    values = {
        "mean": x.mean(0),
        "std": x.std(0),
        "min": x.min(0),
        "max": x.max(0),
        "q01": np.quantile(x, 0.01, axis=0),
        "q99": np.quantile(x, 0.99, axis=0),
    }
    return {name: [float(v) for v in values[name]] for name in STAT_NAMES}


def summarize(path: str, mapping: str = "auto") -> dict[str, Any]:
    """Everything `data info` shows, as JSON-ready data. Reads every episode once; keeps no images."""
    dataset = open_dataset(path, mapping)
    lengths: list[int] = []
    tasks: dict[str, dict[str, Any]] = defaultdict(lambda: {"episodes": 0, "steps": 0, "instructions": set()})
    actions, states = [], []
    cameras: dict[str, list[int]] = {}
    num_problems = successes = 0
    for _, episode, problems in dataset.iter_episodes():
        num_problems += len(problems)
        if episode is None:
            continue
        n = len(episode)
        lengths.append(n)
        successes += episode.success
        entry = tasks[episode.task]
        entry["episodes"] += 1
        entry["steps"] += n
        entry["instructions"].add(episode.instruction)
        actions.append(episode.action)
        states.append(episode.state)
        for cam, arr in {**episode.frames, **episode.embeddings}.items():
            cameras.setdefault(cam, list(arr.shape[1:]))
    return {
        "path": str(dataset),
        "name": dataset.name,
        "file_format": dataset.file_format,
        "mapping": dataset.mapping.name,
        "features": {
            key: {"shape": list(f.shape), "dtype": f.dtype, "kind": f.kind}
            for key, f in dataset.features.items()
        },
        "cameras": cameras,
        "episodes": len(lengths),
        "records": dataset.num_episodes,
        "invalid_episodes": dataset.num_episodes - len(lengths),
        "problems": num_problems,
        "successful_episodes": int(successes),
        "steps": {
            "total": int(sum(lengths)),
            "min": min(lengths, default=0),
            "mean": float(np.mean(lengths)) if lengths else 0.0,
            "max": max(lengths, default=0),
        },
        "tasks": {
            task: {**entry, "instructions": sorted(entry["instructions"])}
            for task, entry in sorted(tasks.items())
        },
        "stats": {
            "action": per_dim_stats(np.concatenate(actions)) if actions else {},
            "state": per_dim_stats(np.concatenate(states)) if states else {},
        },
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The readable table `data info` prints."""
    steps = summary["steps"]
    lines = [
        f"dataset   {summary['path']}",
        f"builder   {summary['name']} ({summary['file_format']}), key mapping '{summary['mapping']}'",
        f"episodes  {summary['episodes']} ({summary['successful_episodes']} successful)"
        + (
            f"; {summary['invalid_episodes']} invalid with {summary['problems']} problem(s): run `robopolicy data check`"
            if summary["invalid_episodes"]
            else ""
        ),
        f"steps     {steps['total']} (per episode min {steps['min']}, mean {steps['mean']:.1f}, max {steps['max']})",
        "",
        "features (steps/… are per step)",
    ]
    width = max(len(k) for k in summary["features"])
    for key, f in summary["features"].items():
        shape = "×".join("?" if d is None else str(d) for d in f["shape"]) or "scalar"
        lines.append(f"  {key:<{width}}  {f['dtype']:<8} {shape:<12} {f['kind']}")
    lines += ["", "tasks"]
    for task, entry in summary["tasks"].items():
        lines.append(f"  {task}: {entry['episodes']} episodes, {entry['steps']} steps")
        lines += [f'      "{text}"' for text in entry["instructions"] if text != task]
    for key in ("action", "state"):
        stats = summary["stats"][key]
        if not stats:
            continue
        lines += ["", f"{key} statistics, per dimension", "  dim " + "".join(f"{n:>10}" for n in STAT_NAMES)]
        for d in range(len(stats["mean"])):
            lines.append(f"  {d:>3} " + "".join(f"{stats[n][d]:>10.4f}" for n in STAT_NAMES))
    return "\n".join(lines)

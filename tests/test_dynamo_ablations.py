"""benchmarks/bench_dynamo_ablations.py at a tiny config: every ablation pretrains through the one
DynaMo path and lands in the table, object-state probes included."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import random_episodes

from robopolicy.data.rlds_writer import build_rlds_dataset

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_dynamo_ablations.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_dynamo_ablations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dataset(tmp_path) -> str:
    episodes = random_episodes(5, object_state_dim=14)
    build_rlds_dataset(
        episodes,
        tmp_path / "ds",
        config_name="t",
        cameras=("agentview", "wrist"),
        image_shape=(16, 16),
        state_dim=9,
        action_dim=7,
        object_state_dim=14,
    )
    return str(tmp_path / "ds")


RUN = ("dynamo", "no_forward_model", "no_inverse_model", "no_stop_gradient")


@pytest.mark.slow  # four pretraining runs, each compiling its own step
def test_every_ablation_runs_at_a_tiny_config(tmp_path, capsys):
    script = _script()
    rows = script.main(
        [
            "--dataset",
            _dataset(tmp_path),
            "--out",
            str(tmp_path / "runs"),
            "--steps",
            "2",
            "--batch-size",
            "4",
            # The ablations that take their own code path in the loss; the others are values of the
            # full model's (covariance weight, latent size, window), checked as switches below.
            "--ablations",
            *RUN,
        ]
    )
    assert list(rows) == list(RUN)
    for name, row in rows.items():
        assert np.isfinite(row["final_loss"]) and row["steps"] == 2, name
        assert set(row["probe"]["object_state"]) == {"linear", "knn", "nearest_neighbour"}
    out = capsys.readouterr().out
    assert out.count("| no_") == 3 and "| dynamo |" in out and "objects NN" in out
    # Each ablation is the one switch it names.
    base = script.PRETRAIN_DYNAMO["tiny"].model
    assert script.ABLATIONS["no_covariance"](base).covariance_weight == 0.0
    assert script.ABLATIONS["short_context"](base).window == 2
    assert script.ABLATIONS["no_bottleneck"](base).latent_dim == base.feature_dim
    assert script.ABLATIONS["no_stop_gradient"](base).stop_gradient is False
    assert script.ABLATIONS["no_forward_model"](base).dynamics == "inverse_only"
    assert script.ABLATIONS["no_inverse_model"](base).dynamics == "forward_only"

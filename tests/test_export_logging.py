"""Inference bundles (`robopolicy export`), load errors, TensorBoard logs, keep_period and eval hooks."""

import json

import jax
import numpy as np
import pytest
from test_train_resume import SMALL_POLICY, _episodes

import robopolicy
from robopolicy.cli import main
from robopolicy.errors import UserError
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.train.loaded_policy import LoadedPolicy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.trainer import train


def _actions(policy: LoadedPolicy) -> np.ndarray:
    runner = PolicyRunner(policy, seed=3)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(3):
        obs = {c: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
        obs["state"] = rng.normal(size=9).astype(np.float32)
        out.append(runner.act(obs))
    return np.stack(out)


def test_training_logs_keeps_periodic_checkpoints_exports_and_loads(tmp_path, capsys):
    calls = []

    def hook(step: int, params: object) -> dict[str, float]:
        calls.append(step)
        return {"param_leaves": float(len(jax.tree.leaves(params)))}

    run = tmp_path / "run"
    config = TrainConfig(
        out=str(run),
        steps=4,
        batch_size=4,
        log_every=1,
        checkpoint_every=1,
        keep_checkpoints=1,
        keep_period=2,
        eval_every=2,
        policy=SMALL_POLICY,
        optimizer=OptimizerConfig(warmup_steps=1),
    )
    train(config, _episodes(), progress=False, eval_hook=hook)
    assert calls == [2, 4]
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert {"loss", "grad_norm", "lr", "steps_per_s"} <= set(lines[0])
    assert [x["step"] for x in lines if x.get("kind") == "eval"] == [2, 4]

    bundle = tmp_path / "bundle"
    assert main(["export", str(run), str(bundle)]) == 0
    assert main(["export", str(run), str(bundle)]) == 2  # never over an existing bundle
    assert "already exists" in capsys.readouterr().err
    a, b = robopolicy.load_policy(run), robopolicy.load_policy(bundle)
    assert b.step == 4 and b.meta["exported_from"].endswith("checkpoints/4")
    assert b.meta["instruction_vocab"] == a.meta["instruction_vocab"]
    np.testing.assert_array_equal(_actions(a), _actions(b))

    # A bundle whose config no longer fits its weights: one line naming the parameters.
    meta_file = next((bundle / "4" / "meta").glob("metadata"))
    meta = json.loads(meta_file.read_text())
    meta["policy_config"]["feature_dim"] = 16
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(
        UserError,
        match=r"^[^\n]*weights do not fit[^\n]*encoders/agentview/out/bias: saved \(8,\), expected \(16,\)",
    ):
        robopolicy.load_policy(bundle)

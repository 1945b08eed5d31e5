"""Inference bundles (`robopolicy export`), load errors, TensorBoard logs, keep_period, eval hooks, and
the logs of a resumed run (each step once, the same wandb run)."""

import json
import shutil
import sys
import types

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
from robopolicy.train.train_logging import LogConfig, RunLogger
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
        log=LogConfig(every=1),
        checkpoint_every=1,
        keep_checkpoints=1,
        keep_period=2,
        eval_every=2,
        policy=SMALL_POLICY,
        optimizer=OptimizerConfig(warmup_steps=1),
    )
    train(config, _episodes(), progress=False, make_eval_hook=lambda meta, run_dir: hook)
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


def _fake_wandb() -> tuple[types.ModuleType, list[dict], list[int]]:
    """A stand-in `wandb` module recording each `init`'s arguments and each logged step."""
    inits: list[dict] = []
    steps: list[int] = []
    module = types.ModuleType("wandb")

    def init(**kwargs):
        inits.append(kwargs)
        return types.SimpleNamespace(log=lambda _metrics, step: steps.append(step), finish=lambda: None)

    module.init = init
    return module, inits, steps


def test_a_resumed_run_logs_each_step_once_and_continues_its_wandb_run(tmp_path, monkeypatch):
    wandb, inits, wandb_steps = _fake_wandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    run = tmp_path / "run"
    config = TrainConfig(
        out=str(run),
        steps=3,
        batch_size=4,
        checkpoint_every=2,
        keep_checkpoints=5,
        log=LogConfig(every=1, wandb_project="proj"),
        policy=SMALL_POLICY,
        optimizer=OptimizerConfig(warmup_steps=1),
    )
    first = train(config, _episodes(), progress=False)
    # The run "died" after logging step 3, before its checkpoint was written: a resume redoes step 3.
    shutil.rmtree(run / "checkpoints" / "3")
    resumed = train(config, _episodes(), progress=False)

    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[-1]["loss"] == resumed.losses[-1][1] == first.losses[-1][1]
    assert [(i["project"], i["resume"]) for i in inits] == [("proj", "allow")] * 2
    assert inits[0]["id"] == inits[1]["id"] == (run / "wandb_run_id").read_text().strip()
    assert wandb_steps == [1, 2, 3, 3]


def test_logger_keeps_rows_up_to_the_resumed_step_and_only_the_first_host_writes(tmp_path):
    log = tmp_path / "train_log.jsonl"
    # Rows of a run killed after step 3, mid-way through writing step 4, resumed from step 2.
    log.write_text(
        '{"step": 1, "loss": 1.0}\n{"step": 2, "kind": "eval", "x": 1}\n{"step": 3, "loss": 0.5}\n{"st'
    )
    RunLogger(tmp_path, LogConfig(), start=2).close()
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]

    other_host = RunLogger(tmp_path, LogConfig(wandb_project="needs-wandb"), start=0, primary=False)
    other_host.log(3, {"loss": 0.1, "probe": {"state": {"linear": 0.5}}})
    other_host.close()
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]

    logger = RunLogger(tmp_path, LogConfig(), start=0)  # a new run in the folder starts a new log
    logger.log(0, {"probe": {"state": {"linear": 0.5}}}, kind="eval")
    logger.close()
    assert [json.loads(x) for x in log.read_text().splitlines()] == [
        {"step": 0, "kind": "eval", "probe": {"state": {"linear": 0.5}}}
    ]

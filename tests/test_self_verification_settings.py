"""Self-verification options as users set them (execution settings, `robopolicy eval` flags) and the
per-step choices they leave in the results database."""

import dataclasses
import sqlite3

import numpy as np
import pytest
from eval_fixtures import TINY_POLICY, make_checkpoint

from robopolicy.cli import main
from robopolicy.errors import UserError
from robopolicy.eval.action_selector import check_execution
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore, Worker
from robopolicy.models.self_verification import Verification
from robopolicy.train.loaded_policy import load_policy

PTP = dataclasses.replace(TINY_POLICY, obs_horizon=3, action_horizon=5, n_action_steps=1, past_steps=-1)


@pytest.fixture(scope="module")
def ptp_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ptp") / "run", config=PTP)


def test_verification_options_change_the_settings_hash_only_with_self_verification():
    random = Verification(selection="random")
    # One candidate: the options are not read, and the hash is the one such settings always had.
    assert "verification" not in ExecutionSettings().identity()
    assert ExecutionSettings(verification=random).config_hash() == ExecutionSettings().config_hash()
    four = ExecutionSettings(self_verify_candidates=4)
    assert four.identity()["verification"]["history"] == "partial"
    assert dataclasses.replace(four, verification=random).config_hash() != four.config_hash()
    assert ExecutionSettings.from_dict(four.to_dict()) == four


def test_verification_options_from_a_settings_table():
    table = {
        "self_verify_candidates": 8,
        "verification": {
            "weights": "custom",
            "custom_weights": [1, 1, 1, 0.5, 0.5, 0.5, 0],
            "history": "full",
        },
    }
    settings = ExecutionSettings.from_dict(table, "sweep.toml")
    assert settings.verification.custom_weights == (1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.0)
    assert settings.verification.history == "full"
    with pytest.raises(UserError, match=r"sweep.toml: field 'verification.selection' must be one of"):
        ExecutionSettings.from_dict({"verification": {"selection": "best"}}, "sweep.toml")
    with pytest.raises(UserError, match=r"sweep.toml: 'verification': .*custom_weights"):
        ExecutionSettings.from_dict({"verification": {"weights": "custom"}}, "sweep.toml")


def test_weights_that_do_not_fit_the_policy_are_refused_naming_it():
    settings = ExecutionSettings(
        self_verify_candidates=4, verification=Verification(weights="custom", custom_weights=(1.0, 1.0))
    )
    with pytest.raises(UserError, match=r"^runs/p: execution\.verification\.custom_weights has 2 values"):
        check_execution(PTP, settings, "runs/p")
    check_execution(PTP, dataclasses.replace(settings, self_verify_candidates=1), "runs/p")  # not read


def test_eval_records_each_plans_choice(ptp_dir, tmp_path, capsys):
    db = tmp_path / "sv.db"
    args = ["eval", "--policy", str(ptp_dir), "--tasks", "cube_on_plate", "--init-states", "0"]
    args += ["--execution.max-steps", "4", "--execution.self-verify-candidates", "3"]
    args += ["--execution.verification.weights", "translation", "--db", str(db), "--video-episodes", "0"]
    assert main(args) == 0
    with ResultsStore(db) as store:
        (run,) = store.runs()
        (episode,) = store.episodes()
    assert run.settings["verification"]["weights"] == "translation"
    log = episode["self_verification"]
    # One plan per step (n_action_steps 1); at step t, min(t, 2) past tokens have been executed.
    assert [e["t"] for e in log] == [0, 1, 2, 3]
    assert [e["compared"] for e in log] == [0, 1, 2, 2]
    assert all(len(e["scores"]) == 3 and 0 <= e["chosen"] < 3 for e in log)
    assert log[0]["chosen"] == 0
    bad = [*args[:-4], "--execution.verification.weights", "custom"]
    bad += ["--execution.verification.custom-weights", "1", "1", "--db", str(tmp_path / "bad.db")]
    assert main(bad) == 2
    assert "custom_weights has 2 values" in capsys.readouterr().err


def test_one_candidate_runs_on_the_noise_of_candidate_0(ptp_dir):
    # Same seed, N = 1 and N = 4 (full history: candidate 0 until 2 actions are executed): the runner
    # hands both the same key per plan, so the first two actions are the same chunk's.
    policy = load_policy(ptp_dir)
    rng = np.random.default_rng(0)
    obs = [
        {
            **{cam: rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for cam in PTP.cameras},
            "state": rng.normal(size=PTP.state_dim).astype(np.float32),
        }
        for _ in range(3)
    ]
    full = Verification(history="full")
    one, four = (
        PolicyRunner(policy, seed=3, execution=ExecutionSettings(self_verify_candidates=n, verification=full))
        for n in (1, 4)
    )
    a, b = np.stack([one.act(o) for o in obs]), np.stack([four.act(o) for o in obs])
    np.testing.assert_allclose(a[:2], b[:2], atol=1e-5)
    assert four.selector.selection_log(0)[2]["compared"] == 2


def test_self_verification_column_is_added_to_older_files(tmp_path):
    db = tmp_path / "old.db"
    with ResultsStore(db) as store:
        run = store.register_run("p", 1, {}, "h")
    # A file written before the column existed.
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE episodes DROP COLUMN self_verification")
    conn.commit()
    conn.close()
    log = [{"t": 0, "chosen": 2, "scores": [0.5, 0.25, 0.125], "compared": 1}]
    with ResultsStore(db) as store:
        assert store._db.execute("SELECT value FROM meta").fetchone()[0] == "2"  # same schema version
        store.record(run, EpisodeRecord("cube_on_plate", 0, 0, True, 3, None, 1.0, self_verification=log))
        store.record(run, EpisodeRecord("cube_on_plate", 1, 0, False, 3, "timeout", 1.0))
        assert store.claim(run, EpisodeKey("cube_on_plate", 2, 0), "", Worker.this_process())
        logs = [e["self_verification"] for e in store.episodes(run)]
    assert logs == [log, None]

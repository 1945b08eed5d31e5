"""Training resumes exactly: a run restarted from its step-3 checkpoint reproduces steps 4–6."""

import dataclasses
import shutil

import jax
import numpy as np
import pytest

from robopolicy.data.episode import Episode
from robopolicy.errors import UserError
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.checkpoint import load_meta
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train

SMALL_POLICY = PolicyConfig(
    image_size=16, encoder_channels=(4, 8), feature_dim=8, denoiser_width=32, denoiser_depth=1, image_shift=2
)


def _episodes() -> list[Episode]:
    rng = np.random.default_rng(0)
    return [
        Episode(
            frames={c: rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
            state=rng.normal(size=(12, 9)).astype(np.float32),
            action=rng.uniform(-1, 1, size=(12, 7)).astype(np.float32),
            reward=np.zeros(12, np.float32),
            task="cube_on_plate",
            instruction="put the red cube on the plate",
            episode_id=i,
        )
        for i in range(3)
    ]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    config = TrainConfig(
        out=str(tmp_path / "a"),
        steps=6,
        batch_size=4,
        checkpoint_every=3,
        keep_checkpoints=5,
        log=LogConfig(every=1),
        policy=SMALL_POLICY,
        optimizer=OptimizerConfig(warmup_steps=2, learning_rate=1e-3),
    )
    episodes = _episodes()
    full = train(config, episodes, progress=False)

    # A copy of the run that "died" after its step-3 checkpoint.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "6")
    (tmp_path / "b" / "train_log.jsonl").unlink()
    resumed = train(dataclasses.replace(config, out=str(tmp_path / "b")), episodes, progress=False)

    assert [s for s, _ in resumed.losses] == [4, 5, 6]
    np.testing.assert_array_equal([loss for _, loss in resumed.losses], [loss for _, loss in full.losses[3:]])

    # Inference needs no dataset: stats, dataset statistics and vocabulary travel in the checkpoint.
    _, _, meta = load_meta(tmp_path / "a")
    assert meta["instruction_vocab"] == {
        "words": ["cube", "on", "plate", "put", "red", "the"],
        "max_length": 16,
    }
    assert (
        set(meta["dataset_stats"]["keys"]) == {"action", "state"}
        and "q01" in meta["dataset_stats"]["keys"]["action"]
    )
    assert (tmp_path / "a" / "checkpoints" / "3" / "data_iter" / "process_0-of-1.json").is_file()

    a, b = load_policy(tmp_path / "a"), load_policy(tmp_path / "b")
    assert a.step == b.step == 6
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_with_another_policy_shape_names_the_keys(tmp_path):
    config = TrainConfig(
        out=str(tmp_path / "run"),
        steps=1,
        batch_size=4,
        log=LogConfig(every=1),
        policy=SMALL_POLICY,
    )
    train(config, _episodes(), progress=False)
    wider = dataclasses.replace(config, steps=2, policy=dataclasses.replace(config.policy, feature_dim=16))
    with pytest.raises(UserError, match=r"feature_dim: 8 → 16"):
        train(wider, _episodes(), progress=False)


def test_training_refuses_bad_episodes_with_one_line(tmp_path):
    episodes = _episodes()
    episodes[2].state[5, 1] = np.nan
    config = TrainConfig(
        dataset="demos", out=str(tmp_path / "run"), steps=1, batch_size=4, policy=SMALL_POLICY
    )
    with pytest.raises(
        UserError,
        match=r"^demos: episode 2: key 'state' contains NaN or Inf at 1 step\(s\), first at step 5$",
    ):
        train(config, episodes, progress=False)
    short = _episodes()
    short[1] = dataclasses.replace(
        short[1],
        action=short[1].action[:1],
        state=short[1].state[:1],
        reward=short[1].reward[:1],
        frames={c: f[:1] for c, f in short[1].frames.items()},
    )
    with pytest.raises(
        UserError,
        match=r"^demos: episode 1: key 'action' has 1 step: one-step episode, needs at least 2 steps$",
    ):
        train(config, short, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written

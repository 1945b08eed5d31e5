"""The trainer trains any `Policy` preset shape, and its checkpoints run closed loop."""

import dataclasses

import numpy as np
from test_train_resume import _episodes

from robopolicy.data.image_resize import resize_with_pad
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.policy_presets import TINY_TRANSFORMER_DDIM
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.loop import config_differences
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train

TINY_PTP = PolicyConfig(
    image_size=16,
    encoder_channels=(4, 8),
    feature_dim=8,
    image_shift=2,
    obs_horizon=2,
    action_horizon=4,
    n_action_steps=2,
    **TINY_TRANSFORMER_DDIM,
    past_steps=1,
    text="mean",
    vocab_size=0,  # training sets it to the dataset vocabulary's size
)


def test_transformer_diffusion_ptp_text_policy_trains_and_runs(tmp_path):
    config = TrainConfig(
        out=str(tmp_path / "run"),
        steps=2,
        batch_size=4,
        log=LogConfig(every=1),
        policy=TINY_PTP,
        optimizer=OptimizerConfig(warmup_steps=1),
        mask_padded_actions=True,
    )
    result = train(config, _episodes(), progress=False)
    assert [s for s, _ in result.losses] == [1, 2] and np.isfinite(result.final_loss)

    policy = load_policy(tmp_path / "run")
    # The text encoder's table covers the pipeline's vocabulary: 6 words + padding + unknown.
    assert policy.config.vocab_size == 8 and policy.config.head == "diffusion"
    runner = PolicyRunner(policy, seed=0, execution=ExecutionSettings(self_verify_candidates=3))
    rng = np.random.default_rng(1)
    for _ in range(4):
        obs = {c: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
        obs["state"] = rng.normal(size=9).astype(np.float32)
        action = runner.act(obs)
        assert action.shape == (7,) and np.all(np.isfinite(action))
    assert runner.num_inferences == 2

    # Frames of another size (here a 40×24 camera) get the training pipeline's resize: acting on
    # them equals acting on the resized frames.
    big = [
        {c: rng.integers(0, 256, (40, 24, 3), dtype=np.uint8) for c in ("agentview", "wrist")}
        for _ in range(2)
    ]
    actions = []
    for resize in (False, True):
        runner.reset(seed=5)
        for frames in big:
            obs = {c: resize_with_pad(f, 16, 16) if resize else f for c, f in frames.items()}
            actions.append(runner.act({**obs, "state": np.zeros(9, np.float32)}))
    np.testing.assert_array_equal(actions[:2], actions[2:])


def test_keys_an_older_run_did_not_record_count_as_their_defaults():
    defaults = dataclasses.asdict(PolicyConfig())
    new = {"feature_dim": 8, "past_steps": 0, "head": "flow"}
    assert config_differences({"feature_dim": 8}, new, defaults) == []
    assert config_differences({"feature_dim": 8}, {**new, "past_steps": 1}, defaults) == ["past_steps"]
    assert config_differences({"feature_dim": 4}, new, defaults) == ["feature_dim"]

"""PTP multistage with tiny configs: stage 1 end to end → stage 2 on cached embeddings of the frozen
stage-1 encoder → one closed-loop evaluation episode composing the two."""

import dataclasses
import json

import numpy as np
import pytest

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.eval.eval_config import EvalConfig
from robopolicy.eval.evaluate_checkpoint import evaluate_checkpoint
from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.policy_presets import TINY_TRANSFORMER_DDIM
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train
from robopolicy.train_command import train_with_rollouts

STAGE1 = PolicyConfig(
    image_size=32, encoder_channels=(4, 8), feature_dim=8, denoiser_width=32, denoiser_depth=1, image_shift=2
)
STAGE2 = PolicyConfig(
    encoder="cached",
    image_size=32,
    obs_horizon=3,
    action_horizon=6,
    n_action_steps=1,
    **TINY_TRANSFORMER_DDIM,
    past_steps=PAST_STEPS_ALL,
)


@pytest.mark.slow
def test_stage1_then_stage2_then_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        n = 12
        write_raw_episode(
            tmp_path / "raw",
            Episode(
                frames={
                    c: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for c in ("agentview", "wrist")
                },
                state=rng.normal(size=(n, 9)).astype(np.float32),
                action=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
                reward=np.zeros(n, np.float32),
                task="cube_on_plate",
                instruction="put the red cube on the plate",
                episode_id=i,
                seed=i,
            ),
        )
    dataset = tmp_path / "ds"
    build_rlds_dataset(
        tmp_path / "raw",
        dataset,
        config_name="t",
        cameras=("agentview", "wrist"),
        image_shape=(32, 32),
        state_dim=9,
        action_dim=7,
    )
    common = {
        "steps": 2,
        "batch_size": 4,
        "log": LogConfig(every=1),
        "optimizer": OptimizerConfig(warmup_steps=1),
    }
    train(
        TrainConfig(dataset=str(dataset), out=str(tmp_path / "s1"), policy=STAGE1, **common), progress=False
    )
    stage2 = TrainConfig(
        dataset=str(dataset), out=str(tmp_path / "s2"), policy=STAGE2, encoder=str(tmp_path / "s1"), **common
    )
    train(stage2, progress=False)
    assert any((tmp_path / "ds_embeddings").rglob("dataset_info.json"))  # cached next to the dataset
    # Resumes and reuses the cache; the periodic evaluation hook runs a 2-step rollout at step 3.
    more = {"steps": 3, "eval_every": 3, "eval_episodes": 1, "eval_max_steps": 2}
    train_with_rollouts(dataclasses.replace(stage2, **more), progress=False)
    log = [json.loads(x) for x in (tmp_path / "s2" / "train_log.jsonl").read_text().splitlines()]
    evals = [x for x in log if x.get("kind") == "eval"]
    assert [(x["step"], x["episode_steps"]) for x in evals] == [(3, 2.0)] and 0 <= evals[0][
        "success_rate"
    ] <= 1

    policy = load_policy(tmp_path / "s2")
    assert policy.meta["stage1_encoder"]["checkpoint"].endswith("s1/checkpoints/2")
    assert policy.config.feature_dim == 8 and policy.frame_encoder is not None

    evaluate_checkpoint(
        EvalConfig(
            checkpoint=str(tmp_path / "s2"),
            init_states="0:1",
            max_steps=4,
            video_episodes=0,
            out=str(tmp_path / "ev"),
        ),
        progress=False,
    )
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert len(results["episodes"]) == 1 and results["episodes"][0]["steps"] == 4

"""Tiny untrained checkpoints for evaluation tests: 16×16 images, randomly initialised weights.

They are written with the same orbax items inference reads (`policy` weights + `meta`), without
training, so making one takes a second instead of compiling a train step.
"""

import dataclasses
from pathlib import Path

import numpy as np
from flax import nnx

from robopolicy.data.episode import Episode
from robopolicy.data.instruction_vocab import InstructionVocab
from robopolicy.data.normalization import NormalizationStats
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint

TINY_POLICY = PolicyConfig(
    image_size=16,
    encoder_channels=(4, 8),
    feature_dim=8,
    denoiser_width=32,
    denoiser_depth=1,
    image_shift=2,
    obs_horizon=1,
    action_horizon=4,
    n_action_steps=2,
    flow_steps=2,
)


def make_checkpoint(out: Path, steps: tuple[int, ...] = (1,), config: PolicyConfig = TINY_POLICY) -> Path:
    """A run folder `out` with one checkpoint per step (different random weights); returns `out`."""
    rng = np.random.default_rng(0)
    stats = NormalizationStats.fit(
        rng.uniform(-1, 1, (64, config.action_dim)).astype(np.float32),
        rng.normal(size=(64, config.state_dim)).astype(np.float32),
    )
    meta = {"policy_config": dataclasses.asdict(config), "stats": stats.to_dict(), "task": "cube_on_plate"}
    if config.text != "none":
        vocab = InstructionVocab.build(["put the red cube on the blue plate"], max_length=8)
        meta.update(instruction="put the red cube on the blue plate", instruction_vocab=vocab.to_dict())
    manager = checkpoint.checkpoint_manager(out / "checkpoints", max_to_keep=10)
    for step in steps:
        params = nnx.state(Policy(config, rngs=nnx.Rngs(step)), nnx.Param)
        manager.save(
            step,
            args=checkpoint.ocp.args.Composite(
                policy=checkpoint.ocp.args.StandardSave(params), meta=checkpoint.ocp.args.JsonSave(meta)
            ),
        )
    manager.wait_until_finished()
    manager.close()
    return out


def random_episodes(count: int, *, object_state_dim: int = 0) -> list[Episode]:
    """`count` 10-step episodes of random 16×16 frames (agentview + wrist), 9-d state, 7-d actions,
    seeded, with object poses of `object_state_dim` dimensions when > 0."""
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(count):
        episode = Episode(
            frames={c: rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
            state=rng.normal(size=(10, 9)).astype(np.float32),
            action=rng.uniform(-1, 1, size=(10, 7)).astype(np.float32),
            reward=np.zeros(10, np.float32),
            task="cube_on_plate",
            instruction="put the red cube on the plate",
            episode_id=i,
            object_state=rng.normal(size=(10, object_state_dim)).astype(np.float32)
            if object_state_dim
            else None,
        )
        episodes.append(episode)
    return episodes

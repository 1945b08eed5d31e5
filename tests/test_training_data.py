"""What training reads: stats stored next to the dataset, several datasets mixed by weight, and
datasets that disagree refused with the dataset, episode and key named."""

import numpy as np
import pytest

from robopolicy.data.dataset_stats import STATS_FILE
from robopolicy.data.episode import Episode
from robopolicy.data.pipeline import batch_iterator
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.errors import UserError
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.training_data import prepare_training_data

POLICY = PolicyConfig(
    image_size=16, encoder_channels=(4,), feature_dim=4, denoiser_width=8, denoiser_depth=1, image_shift=2
)


def _episodes(n: int, action_dim: int, instruction: str, state_offset: float) -> list[Episode]:
    rng = np.random.default_rng(n)
    return [
        Episode(
            frames={c: rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
            state=(rng.normal(size=(6, 9)) + state_offset).astype(np.float32),
            action=rng.uniform(-1, 1, size=(6, action_dim)).astype(np.float32),
            reward=np.zeros(6, np.float32),
            task="cube_on_plate",
            instruction=instruction,
            episode_id=i,
        )
        for i in range(n)
    ]


def _write(tmp_path, name: str, episodes: list[Episode]) -> str:
    for e in episodes:
        write_raw_episode(tmp_path / f"{name}_raw", e)
    build_rlds_dataset(
        tmp_path / f"{name}_raw",
        tmp_path / name,
        config_name="t16",
        cameras=("agentview", "wrist"),
        image_shape=(16, 16),
        state_dim=9,
        action_dim=episodes[0].action.shape[1],
    )
    return str(tmp_path / name)


def test_two_datasets_mixed_by_weight_with_union_stats(tmp_path):
    a = _episodes(2, 7, "lift the cube", 0.0)
    b = _write(tmp_path, "b", _episodes(3, 7, "push the plate", 100.0))
    config = TrainConfig(
        dataset="a", extra_datasets=(b,), dataset_weights=(1.0, 3.0), batch_size=8, policy=POLICY
    )
    data = prepare_training_data(config, a)
    assert [s.name for s in data.sources] == ["a", b]
    assert data.num_episodes == 5 and data.vocab.words == ("cube", "lift", "plate", "push", "the")
    assert list((tmp_path / "b").rglob(STATS_FILE))  # the extra dataset's own stats stored next to it
    it = batch_iterator(data.batches, read_threads=0)
    states = np.concatenate([next(it)["state"][:, -1, 0] for _ in range(40)])
    from_b = data.stats.state.unnormalize(np.stack([states] + [np.zeros_like(states)] * 8, 1))[:, 0] > 50
    assert abs(from_b.mean() - 0.75) < 0.05
    instruction = next(it)["instruction"]
    assert instruction.dtype == np.int32 and instruction.shape == (8, 16)


def test_datasets_with_other_action_dims_are_refused(tmp_path):
    b = _write(tmp_path, "b6", _episodes(2, 6, "x", 0.0))
    config = TrainConfig(dataset="a", extra_datasets=(b,), batch_size=4, policy=POLICY)
    with pytest.raises(
        UserError, match=rf"^{b}: episode 0: key 'action' has shape \(6,\) per step, dataset a has \(7,\)$"
    ):
        prepare_training_data(config, _episodes(2, 7, "x", 0.0))


def test_weights_must_match_the_datasets():
    with pytest.raises(ValueError, match="one positive weight per dataset"):
        TrainConfig(extra_datasets=("x",), dataset_weights=(1.0,))


def test_frame_stride_zero_is_chosen_from_the_episode_lengths():
    # 6-step episodes, To = 2: 6 / (2·1) = 3 steps between the two frames; the windows follow it.
    policy = PolicyConfig(**{**POLICY.__dict__, "obs_horizon": 2, "frame_stride": 0})
    data = prepare_training_data(
        TrainConfig(dataset="a", batch_size=4, policy=policy), _episodes(2, 7, "x", 0.0)
    )
    assert data.policy_config.frame_stride == 3 and data.sources[0].spec.frame_stride == 3

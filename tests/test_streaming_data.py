"""Training data at scale: frames decoded on demand, windows over them equal to in-memory ones,
frames resized to the policy's size in the pipeline, and `data convert` into our layout."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robopolicy.data import rlds_writer
from robopolicy.data.data_config import DataConfig
from robopolicy.data.dataset_check import check_dataset
from robopolicy.data.dataset_convert import DataConvertConfig, convert
from robopolicy.data.episode import Episode
from robopolicy.data.image_resize import resize_with_pad
from robopolicy.data.pipeline import batch_iterator
from robopolicy.data.rlds_reader import RldsDataset, load_episodes
from robopolicy.data.rlds_records import LazyFrames
from robopolicy.data.rlds_writer import build_rlds_dataset
from robopolicy.data.validate import DatasetError
from robopolicy.data.window_source import WindowSource, WindowSpec, episode_arrays
from robopolicy.errors import UserError
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.training_data import prepare_training_data

TFRECORD_FIXTURE = Path(__file__).parent / "fixtures" / "rlds_tfrecord" / "data"
POLICY = PolicyConfig(
    image_size=16, encoder_channels=(4,), feature_dim=4, denoiser_width=8, denoiser_depth=1, image_shift=2
)


def _episode(i: int, size: int = 24, steps: int = 7) -> Episode:
    rng = np.random.default_rng(i)
    return Episode(
        frames={
            c: rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8) for c in ("agentview", "wrist")
        },
        state=rng.normal(size=(steps, 9)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(steps, 7)).astype(np.float32),
        reward=np.zeros(steps, np.float32),
        task="cube_on_plate",
        instruction="put the cube on the plate",
        episode_id=i,
    )


def _write(path: Path, episodes: list[Episode], encoding: str = "png") -> Path:
    size = episodes[0].frames["agentview"].shape[1:3]
    return build_rlds_dataset(
        iter(episodes),
        path,
        config_name="streamed",
        cameras=("agentview", "wrist"),
        image_shape=size,
        state_dim=9,
        action_dim=7,
        image_encoding=encoding,
    )


@pytest.mark.parametrize("encoding", ["png", "zlib"])
def test_written_frames_read_back_exactly_and_lazily(tmp_path, encoding, monkeypatch):
    written = [_episode(i) for i in range(3)]
    _write(tmp_path / "d", written, encoding)
    reads = []
    original = RldsDataset.raw_record
    monkeypatch.setattr(RldsDataset, "raw_record", lambda self, i: reads.append(i) or original(self, i))
    episodes = load_episodes(tmp_path / "d")
    assert [e.episode_id for e in episodes] == [0, 1, 2]
    reads.clear()
    frames = episodes[1].frames["wrist"]
    assert isinstance(frames, LazyFrames) and frames.shape == (7, 24, 24, 3) and not reads
    np.testing.assert_array_equal(frames[[4, 0]], written[1].frames["wrist"][[4, 0]])
    assert len(reads) == 1  # one record read for the two frames, none held in between
    np.testing.assert_array_equal(np.asarray(frames), written[1].frames["wrist"])
    np.testing.assert_array_equal(episodes[1].action, written[1].action)


def test_lazy_frames_decode_only_the_steps_asked_for():
    decoded = []
    stored = [bytes([t]) for t in range(10)]

    def decode(raw: bytes) -> np.ndarray:
        decoded.append(raw[0])
        return np.full((2, 3, 3), raw[0], np.uint8)

    frames = LazyFrames(lambda: stored, decode, 10, (2, 3, 3))
    out = frames[np.array([[7, 2], [2, 9]])]
    assert out.shape == (2, 2, 2, 3, 3) and out[1, 1, 0, 0, 0] == 9
    assert sorted(decoded) == [2, 7, 9]  # step 2, asked for twice, is decoded once
    assert frames[3].shape == (2, 3, 3) and frames[-1][0, 0, 0] == 9


def test_windows_over_lazy_frames_equal_in_memory_windows_and_resize(tmp_path):
    written = [_episode(i, steps=5 + i) for i in range(4)]
    _write(tmp_path / "d", written)
    lazy = [episode_arrays(e) for e in load_episodes(tmp_path / "d")]
    eager = [episode_arrays(e) for e in written]
    spec = WindowSpec(obs_horizon=3, action_horizon=4, frame_stride=2)
    a, b = WindowSource(lazy, spec, name="lazy"), WindowSource(eager, spec, name="eager")
    indices = np.array([0, 3, 7, 7, len(a) - 1, 12])
    batch_a, batch_b = a.get_batch(indices), b.get_batch(indices)
    for cam in ("agentview", "wrist"):
        np.testing.assert_array_equal(batch_a["images"][cam], batch_b["images"][cam])
    np.testing.assert_array_equal(batch_a["action"], batch_b["action"])
    np.testing.assert_array_equal(batch_a["obs_valid"], batch_b["obs_valid"])

    small = WindowSource(lazy, spec, name="lazy", image_size=10)
    resized = small.get_batch(indices)["images"]["wrist"]
    assert resized.shape == (6, 3, 10, 10, 3) and small.layout["images/wrist"][1] == (10, 10, 3)
    np.testing.assert_array_equal(resized, resize_with_pad(batch_b["images"]["wrist"], 10, 10))


def test_policy_image_size_wins_and_the_native_size_is_recorded(tmp_path):
    _write(tmp_path / "d", [_episode(i, size=32) for i in range(3)], "zlib")
    config = TrainConfig(dataset=str(tmp_path / "d"), batch_size=4, policy=POLICY)
    data = prepare_training_data(config)
    assert data.policy_config.image_size == 16
    assert data.native_image_shapes == {str(tmp_path / "d"): {"agentview": (32, 32, 3), "wrist": (32, 32, 3)}}
    batch = next(batch_iterator(data.batches, read_threads=1))
    assert batch["images"]["agentview"].shape == (4, POLICY.obs_horizon, 16, 16, 3)
    # Small datasets are decoded into memory once; with no frame cache they stream: same batches.
    streamed = prepare_training_data(dataclasses.replace(config, data=DataConfig(frame_cache_gb=0)))
    assert isinstance(streamed.sources[0]._lazy["images/wrist"][0], LazyFrames)
    assert not data.sources[0]._lazy
    for k in (0, 5):
        a, b = data.batches[k], streamed.batches[k]
        np.testing.assert_array_equal(a["images"]["wrist"], b["images"]["wrist"])
        np.testing.assert_array_equal(a["action"], b["action"])


def test_extra_datasets_of_other_sizes_and_mappings_mix(tmp_path):
    a = _write(tmp_path / "a", [_episode(i, size=32) for i in range(2)])
    b = _write(tmp_path / "b", [_episode(10 + i, size=20) for i in range(2)], "zlib")
    config = TrainConfig(
        dataset=str(a), extra_datasets=(str(b),), extra_mappings=("robopolicy",), batch_size=4, policy=POLICY
    )
    assert config.dataset_mappings() == ("auto", "robopolicy")
    data = prepare_training_data(config)
    assert next(batch_iterator(data.batches, 0))["images"]["wrist"].shape[2:] == (16, 16, 3)
    with pytest.raises(ValueError, match="extra_mappings needs one mapping per extra dataset"):
        TrainConfig(dataset=str(a), extra_datasets=(str(b),), extra_mappings=("auto", "auto"))


def test_convert_tfrecord_resizes_subsamples_and_is_atomic(tmp_path):
    result = convert(
        DataConvertConfig(src=str(TFRECORD_FIXTURE), dst=str(tmp_path / "out"), image_size=16, every=2),
        progress=False,
    )
    assert (result.episodes, result.skipped, result.image_shape) == (2, 0, (16, 16, 3))
    source = {e.episode_id: e for e in load_episodes(TFRECORD_FIXTURE)}
    converted = load_episodes(result.dataset_dir)
    assert len(converted) == 2
    for episode in converted:
        original = next(e for e in source.values() if np.array_equal(e.action, episode.action))
        np.testing.assert_array_equal(episode.state, original.state)
        assert episode.instruction == original.instruction
        expected = resize_with_pad(np.asarray(original.frames["agentview"]), 16, 16)
        assert np.abs(np.asarray(episode.frames["agentview"]).astype(int) - expected).max() == 0  # png
    with pytest.raises(UserError, match="already exists"):
        convert(DataConvertConfig(src=str(TFRECORD_FIXTURE), dst=str(tmp_path / "out")), progress=False)
    assert not list(tmp_path.glob(".*partial"))


def test_convert_stops_at_a_bad_episode_and_leaves_nothing(tmp_path):
    bad = [_episode(0), _episode(1), _episode(2)]
    bad[1].action[3, 2] = np.nan
    _write(tmp_path / "src", bad)
    with pytest.raises(DatasetError, match=r"episode 1: key 'action' contains NaN .*--skip-bad"):
        convert(DataConvertConfig(src=str(tmp_path / "src"), dst=str(tmp_path / "out")), progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    result = convert(
        DataConvertConfig(src=str(tmp_path / "src"), dst=str(tmp_path / "out"), skip_bad=True), progress=False
    )
    assert (result.episodes, result.skipped) == (2, 1)
    assert sorted(e.episode_id for e in load_episodes(result.dataset_dir)) == [0, 2]


def test_data_convert_cli_then_check_and_train(tmp_path):
    cli = str(Path(sys.executable).parent / "robopolicy")
    out = tmp_path / "lib16"
    run = subprocess.run(
        [cli, "data", "convert", str(TFRECORD_FIXTURE), str(out), "--image-size", "16"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["episodes"] == 3
    again = subprocess.run(
        [cli, "data", "convert", str(TFRECORD_FIXTURE), str(out)], capture_output=True, text=True
    )
    assert again.returncode == 2 and again.stderr.strip().endswith("never overwrites one")
    assert "Traceback" not in again.stderr
    check = subprocess.run([cli, "data", "check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    data = prepare_training_data(
        TrainConfig(dataset=str(out), batch_size=4, policy=dataclasses.replace(POLICY, image_size=32))
    )
    assert next(batch_iterator(data.batches, 0))["images"]["agentview"].shape[2:] == (32, 32, 3)


LEROBOT_FIXTURE = Path(__file__).parent / "fixtures" / "lerobot" / "libero_tiny_v30"


def test_lerobot_dataset_converts_checks_and_trains_and_is_refused_unconverted(tmp_path):
    with pytest.raises(UserError, match="a LeRobotDataset; training reads RLDS, so convert it once"):
        prepare_training_data(TrainConfig(dataset=str(LEROBOT_FIXTURE), batch_size=4, policy=POLICY))
    result = convert(
        DataConvertConfig(src=str(LEROBOT_FIXTURE), dst=str(tmp_path / "lr"), image_encoding="png"),
        progress=False,
    )
    assert result.episodes == 3 and result.image_shape == (48, 48, 3)
    assert check_dataset(str(tmp_path / "lr")).problems == []
    data = prepare_training_data(TrainConfig(dataset=str(tmp_path / "lr"), batch_size=4, policy=POLICY))
    assert next(batch_iterator(data.batches, 0))["images"]["agentview"].shape[2:] == (16, 16, 3)


def test_truncated_array_record_is_one_line_naming_the_shard(tmp_path):
    dataset_dir = _write(tmp_path / "d", [_episode(i) for i in range(3)])
    [shard] = dataset_dir.glob("*.array_record-*")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size * 2 // 3])
    problems = check_dataset(str(tmp_path / "d")).problems
    assert problems and all(f"is unreadable (DatasetError: {shard}: " in p.message for p in problems)
    cli = str(Path(sys.executable).parent / "robopolicy")
    run = subprocess.run(
        [cli, "train", "--preset", "tiny", "--dataset", str(tmp_path / "d"), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    [line] = [line for line in run.stderr.splitlines() if line.startswith("robopolicy train: error:")]
    assert str(shard) in line and "episode " in line


def test_datasets_larger_than_a_shard_are_written_in_order_without_tensorflow(tmp_path, monkeypatch):
    # TFDS's own writer needs TensorFlow once a split passes 1 GB; ours rolls shards instead.
    monkeypatch.setattr(rlds_writer, "SHARD_BYTES", 20_000)
    written = [_episode(i) for i in range(5)]
    dataset_dir = _write(tmp_path / "d", written)
    assert len(list(dataset_dir.glob("*.array_record-*-of-*"))) >= 3 and not list(dataset_dir.glob(".*"))
    dataset = RldsDataset(dataset_dir)
    assert dataset.num_episodes == 5
    read = [episode for _, episode, _ in dataset.iter_episodes()]
    assert [e.episode_id for e in read] == [0, 1, 2, 3, 4]  # storage order is the order given
    for episode, original in zip(read, written, strict=True):
        np.testing.assert_array_equal(np.asarray(episode.frames["agentview"]), original.frames["agentview"])

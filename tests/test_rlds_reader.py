"""tfrecord RLDS read without TensorFlow, checked against a fixture that tensorflow-datasets wrote.

robopolicy does not depend on TensorFlow and the test environment does not install it, so everything
here reads tfrecord without it.
"""

import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from robopolicy.cli import main
from robopolicy.data.dataset_check import check_dataset
from robopolicy.data.rlds_reader import RldsDataset, iter_episodes, load_episodes
from robopolicy.data.tfrecord_file import read_records
from robopolicy.data.validate import DatasetError
from robopolicy.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "rlds_tfrecord"
VERSION_DIR = FIXTURE / "data" / "libero_fixture" / "1.0.0"
SHARDS = sorted(VERSION_DIR.glob("libero_fixture-train.tfrecord-*"))


def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURE / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy(tmp_path) -> Path:
    copy = tmp_path / "libero_fixture"
    shutil.copytree(VERSION_DIR, copy)
    return copy


def _record_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each framed record of a TFRecord file, from its length fields."""
    data, spans, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        spans.append((offset, offset + 12 + length + 4))
        offset = spans[-1][1]
    return spans


def test_tfrecord_fixture_reads_without_tensorflow_and_matches_what_was_written():
    make = _fixture_module()
    dataset = RldsDataset(FIXTURE / "data")
    assert (dataset.file_format, dataset.num_episodes, dataset.mapping.name) == ("tfrecord", 3, "libero")
    assert dataset.features["steps/observation/image"].shape == (32, 32, 3)
    assert len(SHARDS) == 2

    raw = dict(dataset.records())
    assert sorted(raw) == [0, 1, 2]
    by_record = {}
    for index, record in raw.items():
        path = record.record_value("episode_metadata/file_path")
        expected = make.episode_values(int(Path(path).stem.removeprefix("demo_")))
        assert path == expected["file_path"]
        for flag in ("is_first", "is_last", "is_terminal"):
            assert record.step_array(flag).tolist() == expected[flag].tolist()
        assert record.step_array("discount").tolist() == expected["discount"].tolist()
        by_record[index] = expected

    seen = set()
    for index, episode, problems in dataset.iter_episodes():
        expected = by_record[index]
        assert problems == [] and episode is not None
        np.testing.assert_array_equal(episode.state, expected["state"])
        np.testing.assert_array_equal(episode.action, expected["action"])
        np.testing.assert_array_equal(episode.reward, expected["reward"])
        assert episode.instruction == episode.task == expected["language_instruction"]
        assert episode.success
        for camera, key in (("agentview", "image"), ("wrist", "wrist_image")):
            frames = episode.frames[camera]
            assert frames.dtype == np.uint8 and frames.shape == expected[key].shape
            error = np.abs(frames.astype(np.int16) - expected[key])  # JPEG is lossy
            assert error.mean() < 4 and error.max() <= 32
        seen.add(expected["file_path"])
    assert len(seen) == 3
    assert [i for i, _, _ in iter_episodes(dataset)] == [0, 1, 2]  # the module-level alias
    assert len(load_episodes(FIXTURE / "data")) == 3
    assert check_dataset(str(FIXTURE / "data")).problems == []


def test_tfrecord_framing_matches_tensorflows_checksums():
    spans = _record_spans(SHARDS[0])
    records = list(read_records(SHARDS[0]))
    assert [len(r) for r in records] == [end - start - 16 for start, end in spans]
    assert sum(1 for _ in read_records(SHARDS[1])) == 1


def test_truncated_shard_names_file_and_episode_and_keeps_the_rest(tmp_path, capsys):
    copy = _copy(tmp_path)
    shard = copy / SHARDS[0].name
    (first, second) = _record_spans(shard)
    shard.write_bytes(shard.read_bytes()[: second[0] + 100])  # cut inside the second record

    result = check_dataset(str(copy))
    assert (result.episodes, result.valid_episodes) == (3, 2)
    [problem] = result.problems
    assert (problem.episode, problem.key) == (1, "steps")
    assert f"{shard}: record 1 (byte {second[0]}) is truncated: 88 of its" in problem.message
    with pytest.raises(DatasetError, match=rf"^{copy}: episode 1: key 'steps' is unreadable .*{shard.name}"):
        load_episodes(copy)
    assert main(["data", "check", str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{copy}: episode 1: key 'steps' is unreadable") and shard.name in lines[0]

    # Cut at a record boundary: framing is intact, the count disagrees with dataset_info.json.
    shard.write_bytes(SHARDS[0].read_bytes()[: first[1]])
    [problem] = check_dataset(str(copy)).problems
    assert problem.episode == 1 and "holds 1 records, dataset_info.json says 2" in problem.message


def test_corrupt_or_missing_shard_is_a_problem_naming_the_file(tmp_path):
    copy = _copy(tmp_path)
    shard = copy / SHARDS[0].name
    data = bytearray(shard.read_bytes())
    data[500] ^= 0xFF  # a flipped byte inside the first record's data
    shard.write_bytes(bytes(data))
    [problem] = check_dataset(str(copy)).problems
    assert problem.episode == 0
    assert (
        f"{shard}: record 0 (byte 0) is corrupt: the checksum of its data does not match" in problem.message
    )

    data[500] ^= 0xFF
    data[3] ^= 0x01  # the first record's length
    shard.write_bytes(bytes(data))
    [problem] = check_dataset(str(copy)).problems
    assert "the checksum of its length does not match" in problem.message

    shard.unlink()
    result = check_dataset(str(copy))
    [problem] = result.problems
    assert (problem.episode, result.valid_episodes) == (0, 1) and shard.name in problem.message


def test_unsupported_file_format_is_one_line(tmp_path):
    copy = _copy(tmp_path)
    info = json.loads((copy / "dataset_info.json").read_text())
    info["fileFormat"] = "riegeli"
    (copy / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"stored as riegeli; robopolicy reads array_record and tfrecord$"):
        load_episodes(copy)

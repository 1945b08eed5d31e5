"""Reading LeRobotDatasets written by LeRobot's own code (tests/fixtures/lerobot) into episodes, and the
one-line problems a damaged copy gives."""

import json
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lerobot_fixtures import (
    CAMERAS,
    EPISODE_LENGTHS,
    EPISODE_TASKS,
    FIXTURES,
    OPENPI_CAMERAS,
    TASKS,
    action,
    frame,
    state,
)

from robopolicy.data.key_mapping import lerobot_mapping, preset_names
from robopolicy.data.lerobot_reader import LeRobotFolder
from robopolicy.data.validate import check_consistent_shapes
from robopolicy.data.video_frames import nearest_frames
from robopolicy.errors import UserError

VIDEO_ERROR = 6.0  # mean absolute error (0-255) AV1 at LeRobot's settings leaves on these frames
V30 = FIXTURES / "libero_tiny_v30"
CLASHING = {"observation.images.top", "observation.depth.top"}


def read_all(folder: LeRobotFolder) -> list:
    return list(folder.iter_episodes())


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("version", ["v30", "v21"])
def test_reads_what_lerobot_wrote(version):
    folder = LeRobotFolder(FIXTURES / f"libero_tiny_{version}", mapping="lerobot_libero")
    assert folder.file_format == f"lerobot v{version[1]}.{version[2]}"
    assert folder.num_episodes == len(EPISODE_LENGTHS) and str(folder) == str(folder.dir)
    assert folder.features["observation.images.image"].kind == "video"
    assert folder.features["observation.state"].shape == (8,)
    read = read_all(folder)
    assert [position for position, _, _ in read] == [0, 1, 2]
    for e, (_, episode, problems) in enumerate(read):
        assert problems == [] and episode is not None
        assert len(episode) == EPISODE_LENGTHS[e] and episode.episode_id == e
        np.testing.assert_array_equal(episode.state, [state(e, t) for t in range(len(episode))])
        np.testing.assert_array_equal(episode.action, [action(e, t) for t in range(len(episode))])
        assert episode.instruction == episode.task == TASKS[EPISODE_TASKS[e]]
        assert episode.success and not episode.reward.any()
        for c, camera in enumerate(("agentview", "wrist")):
            frames = episode.frames[camera]
            assert frames.dtype == np.uint8 and frames.shape == (len(episode), 48, 48, 3)
            for t in range(len(episode)):
                # Video is lossy: each frame is close to what was written at its step, and farther from
                # the neighbouring steps' frames, so an off-by-one frame or a wrong episode is caught.
                error = mean_error(frames[t], frame(e, c, t))
                assert error < VIDEO_ERROR, (e, camera, t, error)
                for other in (t - 1, t + 1):
                    if 0 <= other < len(episode):
                        assert mean_error(frames[t], frame(e, c, other)) > error + 3
    assert check_consistent_shapes([episode for _, episode, _ in read], str(folder)) == []


def test_openpi_layout_images_in_parquet():
    folder = LeRobotFolder(FIXTURES / "openpi_libero_tiny_v30", mapping="openpi_libero_lerobot")
    assert folder.features["image"].kind == "image"
    for e, (_, episode, problems) in enumerate(read_all(folder)):
        assert problems == []
        for c, camera in enumerate(("agentview", "wrist")):  # PNG is lossless
            np.testing.assert_array_equal(
                episode.frames[camera], [frame(e, c, t) for t in range(len(episode))]
            )
        np.testing.assert_array_equal(episode.action, [action(e, t) for t in range(len(episode))])
        assert episode.instruction == TASKS[EPISODE_TASKS[e]]


@pytest.mark.parametrize(
    ("name", "cameras", "state_key", "action_key"),
    [
        ("libero_tiny_v30", CAMERAS, "observation.state", "action"),
        ("openpi_libero_tiny_v30", OPENPI_CAMERAS, "state", "actions"),
    ],
)
def test_auto_mapping_follows_lerobot_names(name, cameras, state_key, action_key):
    mapping = LeRobotFolder(FIXTURES / name).mapping
    assert dict(mapping.cameras) == {cameras[0]: "image", cameras[1]: "wrist_image"}
    assert (mapping.state, mapping.action, mapping.instruction) == (state_key, action_key, "task")
    assert {"lerobot_libero", "openpi_libero_lerobot"} <= set(preset_names())


def test_auto_mapping_keeps_whole_names_where_last_parts_clash():
    mapping = lerobot_mapping({"observation.images.top", "observation.depth.top", "action"}, CLASHING)
    assert dict(mapping.cameras) == {key: key for key in sorted(CLASHING)}


def test_nearest_frames_by_hand():
    times = np.array([0.3, 0.0, 0.1, 0.2])  # decoders need not deliver frames sorted
    index, found = nearest_frames(times, np.array([0.03, 0.17, 0.31, 0.5, -0.02]), 0.045)
    np.testing.assert_array_equal(index, [1, 3, 0, 0, 1])
    np.testing.assert_array_equal(found, [True, True, True, False, True])
    index, found = nearest_frames(np.array([]), np.array([0.0, 0.1]), 0.05)
    assert not found.any() and len(index) == 2


@pytest.fixture
def damaged(tmp_path):
    """A private copy of the v3.0 fixture to damage."""
    return shutil.copytree(V30, tmp_path / "libero_tiny_v30")


def problems_by_episode(path, mapping="lerobot_libero") -> dict[int, list[str]]:
    found = {
        position: [str(p) for p in problems]
        for position, _, problems in read_all(LeRobotFolder(path, mapping))
    }
    for lines in found.values():
        assert all("\n" not in line and line.startswith(str(path)) for line in lines)
    return found


def test_missing_data_parquet(damaged):
    (damaged / "data/chunk-000/file-000.parquet").unlink()
    found = problems_by_episode(damaged)
    assert found[1] == [
        f"{damaged}: episode 1: key 'action' cannot be read: data file data/chunk-000/file-000.parquet is missing"
    ]
    assert all(found[e] for e in found)


def test_damaged_data_parquet(damaged):
    data = damaged / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:500])
    [line] = problems_by_episode(damaged)[0]
    assert "data file data/chunk-000/file-000.parquet is damaged" in line


def test_missing_mp4(damaged):
    video = "videos/observation.images.wrist_image/chunk-000/file-000.mp4"
    (damaged / video).unlink()
    found = problems_by_episode(damaged)
    assert found[2] == [
        f"{damaged}: episode 2: key 'observation.images.wrist_image' cannot be read: video file {video} is missing"
    ]


def test_undecodable_mp4(damaged):
    (damaged / "videos/observation.images.image/chunk-000/file-000.mp4").write_bytes(b"not a video")
    [line] = problems_by_episode(damaged)[0]
    assert "key 'observation.images.image' cannot be decoded" in line and "ffmpeg cannot decode it" in line


def test_mp4_shorter_than_its_parquet(damaged):
    """Cut the shared video after 3.0 s: episode 2 (2.1 s to 3.6 s) loses its frames from step 9 on."""
    video = damaged / "videos/observation.images.image/chunk-000/file-000.mp4"
    cut = video.with_name("cut.mp4")
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-i",
        str(video),
        "-t",
        "3.0",
        "-c",
        "copy",
        str(cut),
    ]
    subprocess.run(command, check=True)
    cut.replace(video)
    found = problems_by_episode(damaged)
    assert found[0] == [] and found[1] == []
    [line] = found[2]
    assert line.startswith(
        f"{damaged}: episode 2: key 'observation.images.image' has 9 frame(s) in video file "
    )
    assert "for 15 rows in data file data/chunk-000/file-000.parquet" in line and "(step 9)" in line


def test_mapping_naming_a_missing_key(damaged, tmp_path):
    toml = tmp_path / "proprio.toml"
    toml.write_text(
        'cameras = { "observation.images.image" = "agentview" }\nstate = "observation.proprio"\ninstruction = "task"\n'
    )
    found = problems_by_episode(damaged, str(toml))
    assert len(found) == 3
    [line] = found[0]
    assert line.startswith(
        f"{damaged}: episode 0: key 'observation.proprio' is not a feature in meta/info.json"
    )


def test_nan_values(damaged):
    data = damaged / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    states = np.stack(table["observation.state"].to_pylist()).astype(np.float32)
    states[EPISODE_LENGTHS[0] + 3, 2] = np.nan  # episode 1, step 3
    column = pa.FixedSizeListArray.from_arrays(pa.array(states.reshape(-1)), 8)
    pq.write_table(
        table.set_column(table.column_names.index("observation.state"), "observation.state", column), data
    )
    found = problems_by_episode(damaged)
    assert found[0] == [] and found[2] == []
    assert found[1] == [
        f"{damaged}: episode 1: key 'observation.state' contains NaN or Inf at 1 step(s), first at step 3"
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda info: "{ not json", r"meta/info.json: unreadable \(JSONDecodeError"),
        (
            lambda info: {**info, "fps": 0},
            r"meta/info.json: damaged LeRobot info.json: 'fps' must be a positive number",
        ),
        (
            lambda info: {**info, "codebase_version": "v1.6"},
            r"damaged LeRobot info.json: codebase_version 'v1.6' is not one robopolicy reads",
        ),
        (
            lambda info: {k: v for k, v in info.items() if k != "video_path"},
            r"'video_path' must be a path template",
        ),
        (lambda info: {**info, "features": {"action": {"dtype": "float32"}}}, r"feature 'action' must have"),
    ],
)
def test_damaged_info_json(damaged, edit, message):
    info_file = damaged / "meta/info.json"
    edited = edit(json.loads(info_file.read_text()))
    info_file.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(UserError, match=message) as raised:
        LeRobotFolder(damaged)
    assert str(raised.value).startswith(str(info_file)) and "\n" not in str(raised.value)


def test_missing_metadata_files(damaged, tmp_path):
    (damaged / "meta/tasks.parquet").unlink()
    with pytest.raises(UserError, match=r"meta/tasks.parquet: no such file"):
        LeRobotFolder(damaged)
    with pytest.raises(UserError, match=r"not a LeRobotDataset folder \(meta/info.json not found\)"):
        LeRobotFolder(tmp_path)


def test_damaged_episode_index(damaged):
    index_file = damaged / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(index_file)
    pq.write_table(table.drop_columns(["data/file_index"]), index_file)
    with pytest.raises(UserError, match=r"file-000.parquet: episode 0: missing or bad field \(KeyError"):
        LeRobotFolder(damaged)

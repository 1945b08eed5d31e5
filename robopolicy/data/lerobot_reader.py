"""Reading a local LeRobotDataset folder (LeRobot's format, v3.0 and v2.0/v2.1) into `Episode`s.

What is read, relative to the dataset folder:

- `meta/info.json`: `codebase_version`, `fps`, `features` (name → dtype, shape), the `data_path` and
  `video_path` templates and, for v2.x, `chunks_size`.
- the episode index: v3.0 `meta/episodes/chunk-*/file-*.parquet` (per episode: `length`, the data
  file's chunk and file index, and per video feature its file's chunk and file index and the episode's
  `from_timestamp` in that shared file); v2.x `meta/episodes.jsonl` (one file per episode and video).
- the tasks: v3.0 `meta/tasks.parquet`, v2.x `meta/tasks.jsonl` (task index → text).
- the frames: the data parquet files (one row per frame: the non-image features, `timestamp`,
  `episode_index`, `task_index`; image features as embedded PNG/JPEG bytes), and one mp4 per video
  feature and file, decoded by `robopolicy.data.video_frames`.

Feature names are the keys of a key mapping (`robopolicy.data.key_mapping`); `task` is the text of each
frame's task, and episode keys (e.g. `episode_index`) are fields of the episode index. Each frame's
video image is the decoded frame nearest to the episode's `from_timestamp` plus the row's `timestamp`,
within `0.4 / fps` s; farther means the video lacks the frame, which is a problem.

Memory is bounded: one data file's mapped columns (LeRobot caps data files at `data_files_size_in_mb`,
100 MB by default) and one episode's decoded frames.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from robopolicy.data.episode import Episode
from robopolicy.data.key_mapping import KeyMapping, lerobot_mapping, mapped_episode, resolve_mapping
from robopolicy.data.rlds_reader import LEROBOT_INFO_FILE, FeatureInfo, lerobot_root
from robopolicy.data.validate import ArraySpec, Problem, check_arrays
from robopolicy.data.video_frames import decode_frames, nearest_frames
from robopolicy.errors import UserError

INFO_FILE = LEROBOT_INFO_FILE
VERSIONS = ("v2.0", "v2.1", "v3.0")
TASK_KEY = "task"  # the text of each frame's task: its task_index looked up in the tasks file
TOLERANCE_FRAMES = 0.4  # a video frame serves a row if it lies within this many frame periods of it
_IMAGE_DTYPES = ("video", "image")
_FRAME_COLUMNS = ("episode_index", "timestamp", "task_index")


@dataclass(frozen=True)
class StoredEpisode:
    """Where one episode lives. Paths are relative to the dataset folder.

    Attributes:
        record: the episode's fields in the episode index (`episode_index`, `length`, `tasks`, ...).
        data_file: the parquet file holding its rows (with other episodes' rows in v3.0).
        videos: per video feature, the mp4 file and the time (s) in it where the episode starts.
    """

    record: dict[str, Any]
    data_file: Path
    videos: dict[str, tuple[Path, float]]

    @property
    def index(self) -> int:
        return int(self.record["episode_index"])

    @property
    def length(self) -> int:
        return int(self.record["length"])


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; not a LeRobotDataset folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({_one_line(e)})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; the LeRobotDataset is incomplete") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({_one_line(e)})") from None
    if not all(isinstance(r, dict) for r in records):
        raise UserError(f"{path}: every line must be a JSON object")
    return records


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A whole parquet file (or some of its columns); a missing or damaged one is a `UserError`."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; the LeRobotDataset is incomplete")
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise UserError(f"{path}: unreadable parquet file ({_one_line(e)})") from None


@dataclass(frozen=True)
class LeRobotInfo:
    """The parts of `meta/info.json` the reader uses, checked on construction."""

    version: str
    fps: float
    features: dict[str, dict[str, Any]]
    data_path: str
    video_path: str | None
    chunks_size: int

    @classmethod
    def read(cls, path: Path) -> LeRobotInfo:
        raw = _read_json(path)

        def bad(message: str) -> UserError:
            return UserError(f"{path}: damaged LeRobot info.json: {message}")

        if not isinstance(raw, dict):
            raise bad("must be a JSON object")
        version = raw.get("codebase_version")
        if version not in VERSIONS:
            raise bad(f"codebase_version {version!r} is not one robopolicy reads ({', '.join(VERSIONS)})")
        fps = raw.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0:
            raise bad(f"'fps' must be a positive number, got {fps!r}")
        features = raw.get("features")
        if not isinstance(features, dict) or not features:
            raise bad("'features' must be a non-empty object")
        for name, feature in features.items():
            if not (
                isinstance(feature, dict)
                and isinstance(feature.get("dtype"), str)
                and isinstance(feature.get("shape"), list)
                and all(isinstance(d, int) for d in feature["shape"])
            ):
                raise bad(f"feature {name!r} must have a string 'dtype' and a list of integers 'shape'")
        if not isinstance(raw.get("data_path"), str):
            raise bad("'data_path' must be a path template")
        has_video = any(f["dtype"] == "video" for f in features.values())
        if has_video and not isinstance(raw.get("video_path"), str):
            raise bad("'video_path' must be a path template, since some features are videos")
        chunks_size = raw.get("chunks_size", 1000)
        if isinstance(chunks_size, bool) or not isinstance(chunks_size, int) or chunks_size < 1:
            raise bad(f"'chunks_size' must be a positive integer, got {chunks_size!r}")
        return cls(version, float(fps), features, raw["data_path"], raw.get("video_path"), chunks_size)


def find_lerobot_dir(path: str | Path) -> Path:
    """The dataset folder for `path`: the folder holding `meta/info.json`, its `meta/` or the file."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such dataset (path does not exist)")
    found = lerobot_root(root)
    if found is None:
        raise UserError(f"{root}: not a LeRobotDataset folder ({INFO_FILE} not found)")
    return found


class LeRobotFolder:
    """An opened local LeRobotDataset: its folder, features, episode index, tasks and key mapping."""

    def __init__(self, path: str | Path, mapping: str = "auto") -> None:
        self.dir = find_lerobot_dir(path)
        self.name = self.dir.name
        self.info = LeRobotInfo.read(self.dir / INFO_FILE)
        self.file_format = f"lerobot {self.info.version}"
        self.features = {
            key: FeatureInfo(
                tuple(f["shape"]),
                "uint8" if f["dtype"] in _IMAGE_DTYPES else f["dtype"],
                f["dtype"] if f["dtype"] in _IMAGE_DTYPES else "column",
            )
            for key, f in self.info.features.items()
        }
        self.image_keys = {k for k, f in self.info.features.items() if f["dtype"] in _IMAGE_DTYPES}
        keys = {*self.info.features, TASK_KEY}
        self.mapping: KeyMapping = (
            lerobot_mapping(keys, self.image_keys)
            if mapping == "auto"
            else resolve_mapping(mapping, keys, self.name)
        )
        self.video_keys = [k for k, f in self.info.features.items() if f["dtype"] == "video"]
        self.tasks = self._read_tasks()
        episodes = []
        for path, record in self._episode_records():
            try:
                _check_record(record)
                episodes.append(self._locate(record))
            except (KeyError, TypeError, ValueError, IndexError) as e:
                where = record.get("episode_index", "?")
                raise UserError(f"{path}: episode {where}: missing or bad field ({_one_line(e)})") from None
        # Storage order (zero-padded file names sort as numbers), so each data file is read once.
        self.episodes = sorted(episodes, key=lambda e: (str(e.data_file), e.index))
        self.num_episodes = len(self.episodes)
        self._open_data: tuple[Path, pa.Table] | None = None  # the data file last read, for its next episode

    def __str__(self) -> str:
        return str(self.dir)

    def _read_tasks(self) -> dict[int, str]:
        """Task index → task text."""
        if self.info.version != "v3.0":
            path = self.dir / "meta/tasks.jsonl"
            try:
                return {int(r["task_index"]): str(r["task"]) for r in _read_jsonl(path)}
            except (KeyError, TypeError, ValueError) as e:
                raise UserError(f"{path}: each line needs 'task_index' and 'task' ({_one_line(e)})") from None
        path = self.dir / "meta/tasks.parquet"
        table = _read_parquet(path)
        # LeRobot writes the task text as the table's (pandas) index, named "task" or left unnamed.
        text = [
            field.name
            for field in table.schema
            if field.name != "task_index"
            and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
        ]
        if "task_index" not in table.column_names or not text:
            raise UserError(f"{path}: needs a 'task_index' column and a task text column")
        column = "task" if "task" in text else text[0]
        return dict(zip(table["task_index"].to_pylist(), table[column].to_pylist(), strict=True))

    def _episode_records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """(index file, entry) for every episode in the episode index, LeRobot's statistics left out."""
        if self.info.version != "v3.0":
            path = self.dir / "meta/episodes.jsonl"
            yield from ((path, record) for record in _read_jsonl(path))
            return
        folder = self.dir / "meta/episodes"
        files = sorted(folder.glob("chunk-*/file-*.parquet"))
        if not files:
            raise UserError(
                f"{folder}: no episode index files (chunk-*/file-*.parquet); the dataset is incomplete"
            )
        for path in files:
            table = _read_parquet(path)
            table = table.select([n for n in table.column_names if not n.startswith("stats/")])
            yield from ((path, record) for record in table.to_pylist())

    def _locate(self, record: dict[str, Any]) -> StoredEpisode:
        """Where an episode index entry's rows and videos are: v3.0 names shared files by chunk and file
        index, and the episode's start time in each video; v2.x has one file per episode and video."""
        index = int(record["episode_index"])
        info = self.info
        if info.version == "v3.0":
            data = info.data_path.format(
                chunk_index=record["data/chunk_index"], file_index=record["data/file_index"]
            )
            videos = {
                key: (
                    self._video_path(
                        key,
                        chunk_index=record[f"videos/{key}/chunk_index"],
                        file_index=record[f"videos/{key}/file_index"],
                    ),
                    float(record[f"videos/{key}/from_timestamp"]),
                )
                for key in self.video_keys
            }
        else:
            chunk = index // info.chunks_size
            data = info.data_path.format(episode_chunk=chunk, episode_index=index)
            videos = {
                key: (self._video_path(key, episode_chunk=chunk, episode_index=index), 0.0)
                for key in self.video_keys
            }
        return StoredEpisode(record, Path(data), videos)

    def _video_path(self, key: str, **indices: int) -> Path:
        assert self.info.video_path is not None  # LeRobotInfo requires it when there are videos
        return Path(self.info.video_path.format(video_key=key, **indices))

    def _data_table(self, path: Path) -> pa.Table:
        """The mapped columns of one data file; the last file read stays open, since episodes are read in
        storage order and one file holds many of them (v3.0)."""
        if self._open_data is not None and self._open_data[0] == path:
            return self._open_data[1]
        self._open_data = None
        if not path.is_file():
            raise FileNotFoundError(path)
        wanted = {*self.mapping.step_specs(), *_FRAME_COLUMNS, self.mapping.reward, self.mapping.is_terminal}
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[n for n in names if n in wanted])
        self._open_data = (path, table)
        return table

    def iter_episodes(self) -> Iterator[tuple[int, Episode | None, list[Problem]]]:
        """(storage position, episode or None, problems) for every episode, one decoded at a time."""
        for position, stored in enumerate(self.episodes):
            episode, problems = self.read_episode(stored)
            yield position, episode, [dataclasses.replace(p, record=position) for p in problems]

    def read_episode(self, stored: StoredEpisode) -> tuple[Episode | None, list[Problem]]:
        """One episode → (Episode, []) or (None, its problems), each naming the file it comes from."""
        mapping = self.mapping
        meta_id = stored.record.get(mapping.episode_id) if mapping.episode_id else None
        episode_id = int(meta_id) if meta_id is not None else stored.index

        def problem(key: str, message: str) -> Problem:
            return Problem(str(self), episode_id, key, message)

        specs = mapping.step_specs()
        if mapping.reward in self.info.features:  # optional, but checked when present
            specs[mapping.reward] = ArraySpec((), "floating")
        unknown = [key for key in specs if key not in self.info.features]
        if mapping.instruction is not None and mapping.instruction not in (TASK_KEY, *self.info.features):
            unknown.append(mapping.instruction)
        if unknown:
            known = ", ".join(sorted(self.info.features))
            return None, [
                problem(key, f"is not a feature in {INFO_FILE} (features: {known})") for key in unknown
            ]
        try:
            rows = self._data_table(self.dir / stored.data_file)
        except FileNotFoundError:
            return None, [problem(mapping.action, f"cannot be read: data file {stored.data_file} is missing")]
        except (OSError, pa.ArrowException) as e:
            message = f"cannot be read: data file {stored.data_file} is damaged ({_one_line(e)})"
            return None, [problem(mapping.action, message)]
        missing = [c for c in _FRAME_COLUMNS if c not in rows.column_names]
        if missing:
            return None, [problem(c, f"is missing from data file {stored.data_file}") for c in missing]
        rows = rows.filter(pc.equal(rows["episode_index"], stored.index))
        where = f"data file {stored.data_file}"
        if rows.num_rows != stored.length:
            message = f"has {rows.num_rows} rows in {where}, but the episode index says {stored.length}"
            return None, [problem(mapping.action, message)]

        arrays: dict[str, np.ndarray] = {}
        problems: list[Problem] = []
        for key in specs:
            try:
                arrays[key] = self._column(key, stored, rows)
            except _ColumnError as e:
                problems.append(problem(key, str(e)))
        task_index = rows["task_index"].to_numpy()
        unknown_tasks = sorted({int(t) for t in task_index} - set(self.tasks))
        if unknown_tasks:
            problems.append(
                problem("task_index", f"in {where} names tasks {unknown_tasks} not in the tasks file")
            )
        specs = {k: s for k, s in specs.items() if k in arrays}
        problems += check_arrays(arrays, specs, str(self), episode_id, mapping.action)
        if problems:
            return None, problems

        instruction = ""
        if mapping.instruction == TASK_KEY:
            instruction = self.tasks[int(task_index[0])]
        elif mapping.instruction is not None:
            instruction = str(rows[mapping.instruction][0].as_py())
        terminal = mapping.is_terminal
        episode = mapped_episode(
            mapping,
            arrays,
            episode_id=episode_id,
            instruction=instruction,
            meta=stored.record.get,
            reward=arrays.get(mapping.reward),
            terminal=rows[terminal].to_numpy(zero_copy_only=False) if terminal in rows.column_names else None,
        )
        return episode, []

    def _column(self, key: str, stored: StoredEpisode, rows: pa.Table) -> np.ndarray:
        """One mapped feature of one episode, stacked over its rows: [T, *shape]."""
        dtype = self.info.features[key]["dtype"]
        if dtype == "video":
            return self._video_frames(key, stored, rows)
        where = f"data file {stored.data_file}"
        if key not in rows.column_names:
            raise _ColumnError(f"is missing from {where}")
        column = rows[key]
        if column.null_count:
            raise _ColumnError(f"has {column.null_count} null value(s) in {where}")
        if dtype == "image":
            return np.stack([_decode_image(cell, where) for cell in column.to_pylist()])
        values = column.combine_chunks()
        if pa.types.is_fixed_size_list(values.type):
            return values.flatten().to_numpy(zero_copy_only=False).reshape(len(values), values.type.list_size)
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            lengths = set(pc.list_value_length(values).to_pylist())
            if len(lengths) > 1:
                raise _ColumnError(f"has rows of differing lengths {sorted(lengths)} in {where}")
            return values.flatten().to_numpy(zero_copy_only=False).reshape(len(values), lengths.pop())
        return values.to_numpy(zero_copy_only=False)

    def _video_frames(self, key: str, stored: StoredEpisode, rows: pa.Table) -> np.ndarray:
        """uint8 [T, H, W, 3]: each row's frame from the episode's range of its video file."""
        file, start = stored.videos[key]
        if not (self.dir / file).is_file():
            raise _ColumnError(f"cannot be read: video file {file} is missing")
        height, width = _image_size(self.info.features[key])
        tolerance = TOLERANCE_FRAMES / self.info.fps
        wanted = start + rows["timestamp"].to_numpy().astype(np.float64)
        try:
            frames, times = decode_frames(
                self.dir / file,
                float(wanted.min()) - tolerance,
                float(wanted.max()) + tolerance,
                height,
                width,
            )
        except UserError as e:
            raise _ColumnError(f"cannot be decoded: {e}") from None
        index, found = nearest_frames(times, wanted, tolerance)
        if not found.all():
            step = int(np.flatnonzero(~found)[0])
            raise _ColumnError(
                f"has {len(frames)} frame(s) in video file {file} for {len(wanted)} rows in data file "
                f"{stored.data_file}: no frame within {tolerance:.3f} s of {wanted[step]:.3f} s (step {step})"
            )
        return frames[index]


def _check_record(record: dict[str, Any]) -> None:
    """An episode index entry needs an integer `episode_index` and a positive integer `length`."""
    if int(record["episode_index"]) < 0 or int(record["length"]) < 1:
        raise ValueError(f"episode_index {record['episode_index']} or length {record['length']} out of range")


def _image_size(feature: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of an image or video feature: from the video's recorded size when there is one,
    else from the shape, which LeRobot stores as [H, W, C] (names `height, width, channel(s)`) or, in
    some older datasets, [C, H, W]."""
    info = feature.get("info") or {}
    if "video.height" in info and "video.width" in info:
        return int(info["video.height"]), int(info["video.width"])
    names = feature.get("names") or []
    shape = feature["shape"]
    if names and str(names[0]).startswith("channel"):
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


class _ColumnError(Exception):
    """Why one feature of one episode cannot be read; becomes that episode's `Problem`."""


def _decode_image(cell: Any, where: str) -> np.ndarray:
    """An image feature's cell (`{"bytes": PNG/JPEG, "path": ...}`) → uint8 [H, W, 3]."""
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        raise _ColumnError(f"has an image without embedded bytes in {where}")
    try:
        with Image.open(BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as e:
        raise _ColumnError(f"has an undecodable image in {where} ({_one_line(e)})") from None

"""A run folder in a bucket (`gs://bucket/run`) reaches orbax and the loggers unchanged.

The bucket is stubbed where each library meets it: etils.epath's backends (our files, orbax's and
grain's files and folders, TensorBoard's event files), and TensorStore's GCS key-value store (orbax's
array data and the checkpoint integrity check read and write through TensorStore, not epath), and
orbax's question to the bucket (through google-cloud-storage) whether it has hierarchical
namespaces. The stubs keep the bucket in a local folder and record the gs:// paths they are given, and the test runs
in an empty working folder, so a mangled path (`gs:/bucket/...`) would show up as a local `gs:` folder.
"""

import contextlib
import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from etils.epath import testing as epath_testing
from eval_fixtures import random_episodes

from robopolicy.data.episode import Episode
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LOG_FILE, LogConfig
from robopolicy.train.trainer import train

RUN = "gs://bucket/run"


class FakeBucket:
    """gs://NAME/... kept under `root`/NAME/...; `seen` holds every gs:// path asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: set[str] = set()

    def local(self, path: object) -> str:
        text = os.fspath(path)
        if not text.startswith("gs://"):
            return text
        self.seen.add(text.rstrip("/"))
        return str(self.root / text.removeprefix("gs://"))

    def remote(self, path: object) -> str:
        text, root = os.fspath(path), f"{self.root}/"
        return f"gs://{text.removeprefix(root)}" if text.startswith(root) else text

    def epath_stubs(self) -> dict:
        one = lambda fn, path, *a, **k: fn(self.local(path), *a, **k)  # noqa: E731
        two = lambda fn, src, dst, **k: fn(self.local(src), self.local(dst), **k)  # noqa: E731

        def glob(fn, pattern):
            return [self.remote(p) for p in fn(self.local(pattern))]

        def walk(fn, top, **k):
            for root, dirs, files in fn(self.local(top), **k):
                yield self.remote(root), dirs, files

        names = ("exists", "isdir", "listdir", "makedirs", "mkdir", "open", "remove", "rmtree", "stat")
        return {
            **dict.fromkeys(names, one),
            "copy": two,
            "rename": two,
            "replace": two,
            "glob": glob,
            "walk": walk,
        }


@contextlib.contextmanager
def fake_bucket(root: Path, monkeypatch: pytest.MonkeyPatch):
    from orbax.checkpoint._src.path import gcs_utils

    bucket = FakeBucket(root)
    kvstores: list[str] = []

    def kvstore(path: str) -> dict:
        kvstores.append(path)
        return {"driver": "file", "path": bucket.local(path)}

    monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", kvstore)
    # Orbax asks the bucket itself (google-cloud-storage) whether it has hierarchical namespaces.
    monkeypatch.setattr(
        gcs_utils, "get_bucket", lambda name: SimpleNamespace(hierarchical_namespace_enabled=False)
    )
    with epath_testing.mock_epath(**bucket.epath_stubs()):
        yield bucket, kvstores


def _episodes() -> list[Episode]:
    return random_episodes(2)


def test_bucket_run_dir_reaches_orbax_and_loggers(tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()  # an empty working folder: a mangled URL would land here
    monkeypatch.chdir(tmp_path / "cwd")
    policy = PolicyConfig(
        image_size=16,
        encoder_channels=(4, 8),
        feature_dim=8,
        denoiser_width=32,
        denoiser_depth=1,
        image_shift=2,
    )
    config = TrainConfig(
        out=RUN, steps=2, batch_size=2, checkpoint_every=2, log=LogConfig(every=1), policy=policy
    )
    with fake_bucket(tmp_path / "gcs", monkeypatch) as (bucket, kvstores):
        train(config, _episodes(), progress=False)
        resumed = train(dataclasses.replace(config, steps=3), _episodes(), progress=False)
        loaded = load_policy(RUN)
    stored = tmp_path / "gcs" / "bucket" / "run"
    assert resumed.final_step == 3 and str(resumed.run_dir) == RUN and loaded.step == 3
    assert [line.count('"step"') for line in (stored / LOG_FILE).read_text().splitlines()] == [1, 1, 1]
    assert list((stored / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (stored / "checkpoints").iterdir()) == ["2", "3"]
    assert list((stored / "checkpoints" / "3" / "state").rglob("manifest.ocdbt"))
    # Every path went to the bucket as a gs:// URL: files through epath, arrays through TensorStore.
    assert f"{RUN}/{LOG_FILE}" in bucket.seen and f"{RUN}/checkpoints/3/meta" in bucket.seen
    assert any(p.startswith(f"{RUN}/tensorboard/events") for p in bucket.seen)
    assert all(p.startswith(f"{RUN}/checkpoints/") for p in kvstores) and len(kvstores) > 2
    assert all(p.startswith(RUN) for p in bucket.seen)
    assert os.listdir(tmp_path / "cwd") == []

"""Damaged checkpoints of a tiny run (a truncated data file, a deleted OCDBT manifest, emptied JSON
metadata): training resumes from the newest intact checkpoint and keeps the damaged one aside; the
loading functions evaluation uses say in one line which file is damaged."""

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import kill_resume_run
import pytest
from flax import nnx
from test_train_resume import _episodes

from robopolicy.errors import UserError
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.checkpoint_integrity import check_step
from robopolicy.train.trainer import train

CONFIG = dataclasses.replace(kill_resume_run.CONFIG, steps=4, checkpoint_every=2, eval_every=0)


def _truncate_data_file(item: Path) -> Path:
    data = max(
        (p for p in item.rglob("*") if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size
    )
    with data.open("r+b") as f:
        f.truncate(100)
    return data


def _delete_manifest(item: Path) -> Path:
    (item / "manifest.ocdbt").unlink()
    return item / "manifest.ocdbt"


def _empty_metadata(step_dir: Path) -> Path:
    (step_dir / "meta" / "metadata").write_text("")
    return step_dir / "meta" / "metadata"


# damage name → (what it does to one step folder, returning the file it damaged)
DAMAGE: dict[str, Callable[[Path], Path]] = {
    "truncated_data": lambda step_dir: _truncate_data_file(step_dir / "state"),
    "deleted_manifest": lambda step_dir: _delete_manifest(step_dir / "state"),
    "emptied_metadata": _empty_metadata,
}
# The same damage to what evaluation reads: the EMA weights (`policy`) and the metadata.
EVAL_DAMAGE: dict[str, Callable[[Path], Path]] = {
    "truncated_data": lambda step_dir: _truncate_data_file(step_dir / "policy"),
    "deleted_manifest": lambda step_dir: _delete_manifest(step_dir / "policy"),
    "emptied_metadata": _empty_metadata,
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, list[tuple[int, float]]]:
    """A 4-step run with checkpoints at steps 2 and 4, and its losses."""
    run = tmp_path_factory.mktemp("damaged") / "run"
    result = train(dataclasses.replace(CONFIG, out=str(run)), _episodes(), progress=False)
    return run, result.losses


def _copy(finished_run, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    return run


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_training_resumes_from_the_newest_intact_checkpoint(finished_run, tmp_path, capfd, damage):
    run = _copy(finished_run, tmp_path)
    damaged = DAMAGE[damage](run / "checkpoints" / "4")
    capfd.readouterr()
    resumed = train(dataclasses.replace(CONFIG, out=str(run)), _episodes(), progress=False)

    assert resumed.losses == finished_run[1][2:]  # steps 3 and 4 again, exactly
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "resuming from step 2" in lines[0], err
    assert str(damaged) in lines[0]
    # Nothing is deleted: the damaged step is kept aside (with its damage), and step 4 is written anew.
    aside = run / "damaged_checkpoints" / "4"
    assert (aside / "state" / "_METADATA").is_file()
    assert (aside / damaged.relative_to(run / "checkpoints" / "4")).exists() == (damage != "deleted_manifest")
    check_step(run / "checkpoints" / "4")


def test_without_an_intact_checkpoint_training_names_the_newest_damaged_file(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    _delete_manifest(run / "checkpoints" / "2" / "state")
    damaged = _empty_metadata(run / "checkpoints" / "4")
    with pytest.raises(
        UserError, match=rf"^{damaged}: empty; the checkpoint is damaged; no intact checkpoint"
    ):
        train(dataclasses.replace(CONFIG, out=str(run)), _episodes(), progress=False)
    assert checkpoint.saved_steps(run / "checkpoints") == [2, 4]  # nothing moved or deleted
    assert not (run / "damaged_checkpoints").exists()


def _load_for_evaluation(run: Path) -> None:
    """What loading a policy for evaluation does with the checkpoint functions."""
    directory, step, meta = checkpoint.load_meta(run)
    config = PolicyConfig.from_dict(meta["policy_config"])
    abstract = nnx.state(nnx.eval_shape(lambda: Policy(config, rngs=nnx.Rngs(0))), nnx.Param)
    assert checkpoint.param_mismatches(directory, step, abstract) == []
    checkpoint.restore_policy_params(directory, step, abstract)


@pytest.mark.parametrize("damage", sorted(EVAL_DAMAGE))
def test_evaluation_loading_names_the_damaged_file(finished_run, tmp_path, damage):
    run = _copy(finished_run, tmp_path)
    _load_for_evaluation(run)  # intact: loads
    damaged = EVAL_DAMAGE[damage](run / "checkpoints" / "4")
    with pytest.raises(UserError) as error:
        _load_for_evaluation(run)
    message = str(error.value)
    assert message.startswith(f"{damaged}: ") and "\n" not in message, message


def test_cli_eval_of_a_checkpoint_without_its_manifest_is_one_line(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    damaged = _delete_manifest(run / "checkpoints" / "4" / "policy")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "robopolicy.cli",
            "eval",
            "--checkpoint",
            str(run),
            "--out",
            str(tmp_path / "ev"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert f"{damaged}: missing" in lines[0]

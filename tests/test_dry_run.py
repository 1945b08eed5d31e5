"""`robopolicy train --dry-run`: sizes of a run from a compiled step, without data or a run folder."""

import re

import jax
import numpy as np
from flax import nnx

from robopolicy.cli import main
from robopolicy.models.policy import Policy
from robopolicy.presets import PRESETS

_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def _bytes(text: str, label: str) -> float:
    number, unit = re.search(rf"{label}:?\s?([\d.]+) (B|KiB|MiB|GiB)", text).groups()
    return float(number) * _UNITS[unit]


def test_tiny_dry_run_sizes_match_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--dry-run", "--out", str(out), "--dataset", str(tmp_path / "none")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # nothing written, and the (missing) dataset was never opened

    policy = PRESETS["train"]["tiny"].policy
    params = nnx.state(nnx.eval_shape(lambda: Policy(policy, rngs=nnx.Rngs(0))), nnx.Param)
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    assert int(re.search(r"parameters: ([\d,]+)", text).group(1).replace(",", "")) == count > 0
    param_bytes = _bytes(text, r"parameters: [\d,]+ \(")
    assert abs(param_bytes - 4 * count) <= 0.05 * 4 * count  # float32, as printed (1 decimal)
    assert _bytes(text, "optimizer state") >= 1.9 * param_bytes  # AdamW: two moments per parameter
    for label in ("arguments", "outputs", "temporaries", "peak about"):
        assert _bytes(text, label) > 0
    assert "placeholder: state_dim" in text

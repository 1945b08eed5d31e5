"""Helpers the notebooks in `notebooks/` share: the tiny-config switch, inline media, output stripping.

CI executes every notebook with `ROBOPOLICY_NOTEBOOK_TINY=1`, which shrinks demos, steps and
episodes so that each notebook runs in well under three minutes on two CPU cores. Without the
variable the notebooks use configs that give meaningful results on a laptop or a GPU.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

TINY_ENV_VAR = "ROBOPOLICY_NOTEBOOK_TINY"

T = TypeVar("T")


def is_tiny() -> bool:
    """True when the notebook should run its tiny CI config (`ROBOPOLICY_NOTEBOOK_TINY=1`)."""
    return os.environ.get(TINY_ENV_VAR, "") not in ("", "0", "false", "False")


def pick(tiny: T, full: T) -> T:
    """`tiny` under the CI switch, else `full`: one line per knob keeps both configs visible."""
    return tiny if is_tiny() else full


def video_html(path: str | Path, width: int = 320) -> Any:
    """An inline, self-contained `<video>` (base64 mp4) for a notebook cell's output."""
    from IPython.display import HTML  # IPython ships with the notebook kernel, not the runtime

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return HTML(
        f'<video width="{width}" controls loop autoplay muted>'
        f'<source src="data:video/mp4;base64,{data}" type="video/mp4"></video>'
    )


def strip_outputs(path: str | Path) -> bool:
    """Remove outputs, execution counts and volatile metadata from a notebook in place.

    Returns True when the file changed. Notebooks are kept stripped in git so that diffs show
    code changes only; `python -m robopolicy.notebook_support notebooks/*.ipynb` strips them.
    """
    path = Path(path)
    original = path.read_text()
    notebook = json.loads(original)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    notebook.get("metadata", {}).pop("widgets", None)
    stripped = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if stripped != original:
        path.write_text(stripped)
        return True
    return False


def has_outputs(path: str | Path) -> bool:
    """True when any code cell of the notebook carries outputs or an execution count."""
    notebook = json.loads(Path(path).read_text())
    return any(
        cell.get("outputs") or cell.get("execution_count") is not None
        for cell in notebook.get("cells", [])
        if cell.get("cell_type") == "code"
    )


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m robopolicy.notebook_support NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for p in paths:
        if strip_outputs(p):
            print(f"stripped {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

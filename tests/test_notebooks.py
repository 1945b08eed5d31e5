"""Every notebook in `notebooks/` runs end to end on its tiny config, and is stored without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from robopolicy.notebook_support import TINY_ENV_VAR, has_outputs, pick, strip_outputs

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_pick_follows_the_tiny_switch(monkeypatch):
    monkeypatch.setenv(TINY_ENV_VAR, "1")
    assert pick(2, 50) == 2
    monkeypatch.setenv(TINY_ENV_VAR, "0")
    assert pick(2, 50) == 50
    monkeypatch.delenv(TINY_ENV_VAR)
    assert pick(2, 50) == 50


def test_strip_outputs_removes_outputs_and_counts(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 3
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert has_outputs(path)
    assert strip_outputs(path) is True
    assert not has_outputs(path)
    assert "".join(json.loads(path.read_text())["cells"][1]["source"]) == "print(1)"
    assert strip_outputs(path) is False


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_quickstart", "02_datasets", "03_dynamo", "04_long_context_ptp", "05_eval_sweeps"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_stripped(path):
    assert not has_outputs(path), f"{path.name} has outputs: run python -m robopolicy.notebook_support {path}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_tiny_config(path, tmp_path, monkeypatch):
    # The kernel inherits this process's environment: the tiny switch, the source tree on the path,
    # and a scratch working directory so that notebook outputs never land in the checkout.
    monkeypatch.setenv(TINY_ENV_VAR, "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors

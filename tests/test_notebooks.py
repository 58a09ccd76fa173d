"""The notebooks in ``notebooks/``: committed without outputs, and each runs end to end.

Executed with nbclient on a ``python3`` kernel of the running interpreter (jupyter_client's
native kernel spec), with the working directory ``notebooks/`` and ``MPLBACKEND=Agg`` (as in
CI, which turns off inline display unless the notebook asks for it). A cell that raises fails the
test with the cell's traceback; a cell that writes to stderr (warnings) fails it too. What a
reader sees is checked as well: every cell that draws a plot shows it as an image, and results
show as HTML tables, not as ``<Figure ...>`` or dataclass reprs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_there_are_three_notebooks() -> None:
    assert len(NAMES) == 3


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name: str) -> None:
    nb = json.loads((NOTEBOOKS / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}: strip outputs before committing"
            assert cell["execution_count"] is None
    kinds = [c["cell_type"] for c in nb["cells"]]
    assert kinds.count("markdown") >= 3, "text between the cells tells the story"


def test_notebooks_match_their_builder() -> None:
    done = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "build_notebooks.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    errors = [
        (i, out.get("text", ""))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    ]
    assert errors == [], f"{name}: cells wrote to stderr: {errors}"
    assert os.environ["MPLBACKEND"] == "Agg"
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for i, cell in enumerate(code_cells):
        kinds = {key for out in cell.outputs for key in out.get("data", {})}
        texts = " ".join(
            str(out.get("data", {}).get("text/plain", "")) + str(out.get("text", ""))
            for out in cell.outputs
        )
        assert "<Figure size" not in texts or "image/png" in kinds, (
            f"{name}, code cell {i}: a figure is shown as text, not as an image"
        )
        if "plot_" in cell.source:
            assert "image/png" in kinds, f"{name}, code cell {i}: the plot is not shown"
    html = sum(
        1 for cell in code_cells for out in cell.outputs if "text/html" in out.get("data", {})
    )
    assert html >= 2, f"{name}: results should show as HTML tables ({html} HTML outputs)"

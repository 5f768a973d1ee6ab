"""The analysis notebook executes on a small results fixture."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from results_fixture import make_results

from xner.aggregate import aggregate

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "depth_vs_robustness.ipynb"


def test_notebook_outputs_are_stripped_in_git():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
    )


def test_notebook_executes_on_fixture(tmp_path, monkeypatch):
    make_results(tmp_path / "runs")
    aggregate(
        [tmp_path / "runs"],
        "distill.depth",
        tmp_path / "agg",
        ["distill.map"],
        [("swa_news", "swa_wiki")],
        {"distill.depth": "0"},
        resamples=200,
    )
    monkeypatch.setenv("XNER_RESULTS", str(tmp_path / "agg"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"
    )
    assert "swa_wiki" in text and "comparisons are significant" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
    assert (tmp_path / "agg" / "notebook_drop.png").is_file()

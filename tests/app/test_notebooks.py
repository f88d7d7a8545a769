"""The three research notebooks run top to bottom (small settings) and are stored without
outputs; the example script that mirrors each one runs in the same kernel right after it (its
compiled programs are then already in memory), and prints what it promises."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

import bayesgmm
from tests.helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: notebook -> the example script that mirrors it
MIRRORS = {"01_quickstart": "quickstart.py", "02_choosing_k": "choosing_k.py",
           "03_segment_uncertainty": "segment_uncertainty.py"}


def test_the_three_notebooks_are_there():
    assert [path.stem for path in NOTEBOOKS] == list(MIRRORS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: run `make strip-notebooks` before committing")


def _text(cells) -> str:
    texts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def _check_quickstart(out: str, folder: Path) -> None:
    line = next(line for line in out.splitlines() if line.startswith("K=2 full"))
    ours, theirs = (float(word.rstrip(",")) for word in line.split() if word[0] in "-0123456789")
    assert abs(ours - theirs) < 1e-4  # the same maximum as scikit-learn
    assert "BIC selects tied, K=3" in out  # mclust's choice too (EEE, 3 components)
    assert "identical probabilities: True" in out


def _check_choosing_k(out: str, folder: Path) -> None:
    assert out.count("sparse") >= 2 and "ari_vs_truth" in out
    for approach in ("BIC", "ICL", "MFM", "DP"):
        assert approach in out


def _check_segment_uncertainty(out: str, folder: Path) -> None:
    assert "ambiguous customers" in out and "accuracy against the true segments" in out
    assert "number of segments, prior and posterior" in out and "loss-optimal partition" in out
    table = pd.read_csv(folder / "segments.csv")
    assert {"label", "probability", "probability_lower", "ambiguous"} <= set(table.columns)
    assert len(table) == 600
    reloaded = bayesgmm.load(folder / "model.bgmm")
    assigned = reloaded.assign(table[["annual_spend", "visits_per_month", "basket_size"]])
    assert (assigned["label"] == table["label"]).all()


EXAMPLE_CHECKS = {"quickstart.py": _check_quickstart, "choosing_k.py": _check_choosing_k,
                  "segment_uncertainty.py": _check_segment_uncertainty}


#: Executed by the suite: all three (02 and 03 run NUTS with short chains, ~47 s and ~28 s).
EXECUTED = NOTEBOOKS


@pytest.mark.parametrize("path", EXECUTED, ids=lambda path: path.stem)
@pytest.mark.slow
def test_notebook_and_its_example_run(path, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESGMM_SMALL", "1")
    notebook = nbformat.read(path, as_version=4)
    n_cells = len(notebook.cells)
    example = ROOT / "examples" / MIRRORS[path.stem]
    out_dir = tmp_path / "example_output"
    notebook.cells.append(new_code_cell(
        f"import runpy, sys\nsys.argv = [{str(example)!r}, {str(out_dir)!r}]\n"
        f"runpy.run_path({str(example)!r}, run_name='__main__')"))
    # Raises CellExecutionError, with the failing cell and its traceback, on any error.
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = notebook.cells[:n_cells]
    images = sum("image/png" in output.get("data", {})
                 for cell in cells for output in cell.get("outputs", []))
    figures, expected = {
        "01_quickstart": (2, ["BIC selects", "identical probabilities"]),
        "02_choosing_k": (2, ["ICL", "sparse", "ari_vs_truth"]),
        "03_segment_uncertainty": (6, ["customers are ambiguous", "accuracy", "share_lower",
                                       "cluster 0", "posterior", "adjusted Rand index",
                                       "share_correct"]),
    }[path.stem]
    assert images == figures, f"{path.name} drew {images} figures"
    text = _text(cells)
    for phrase in expected:
        assert phrase in text, f"{path.name}: {phrase!r} not in the outputs"
    example_out = "".join(output.get("text", "") for output in notebook.cells[-1].outputs
                          if output.get("name") == "stdout")
    EXAMPLE_CHECKS[example.name](example_out, out_dir)


def test_every_example_is_run_by_a_test():
    scripts = {path.name for path in (ROOT / "examples").glob("*.py")}
    assert scripts == set(MIRRORS.values()) | {"anomaly_scoring.py", "minibatch_svi.py",
                                               "multihost_em.py"}

"""``bayesgmm fit / predict / report``: outputs, preprocessing that travels with the model, and
one-line errors."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import load
from bayesgmm.app.cli import main
from bayesgmm.app.workflow import Clustering


@pytest.fixture(scope="module")
def table(tmp_path_factory, faithful):
    """Old Faithful with a text id column, as CSV."""
    frame = faithful.copy()
    frame.insert(0, "id", [f"e{i}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("data") / "faithful.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.fixture(scope="module")
def fitted(table, tmp_path_factory):
    path, _ = table
    out = tmp_path_factory.mktemp("fit")
    assert main(["fit", str(path), "--k", "1:4", "--standardize", "--seed", "0", "--quiet",
                 "--out", str(out)]) == 0
    return out


def test_fit_writes_the_four_outputs(fitted, table):
    _, frame = table
    assert {p.name for p in fitted.iterdir()} >= {"assignments.csv", "model.bgmm",
                                                  "selection.csv", "report.html"}
    assignments = pd.read_csv(fitted / "assignments.csv")
    assert len(assignments) == len(frame)
    assert list(assignments.columns[:3]) == ["id", "eruptions", "waiting"]
    probs = assignments.filter(regex=r"^prob_\d+$").to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(probs.argmax(axis=1), assignments["label"])
    np.testing.assert_allclose(assignments["uncertainty"], 1 - probs.max(axis=1))
    # The anomaly threshold is the 1% quantile of the training log densities.
    n_flagged = int(assignments["anomaly"].sum())
    assert 1 <= n_flagged <= np.ceil(0.01 * len(frame))
    lowest = assignments["log_density"].nsmallest(n_flagged + 1)
    assert assignments.loc[lowest.index[:-1], "anomaly"].all()
    assert not assignments.loc[lowest.index[-1], "anomaly"]
    selection = pd.read_csv(fitted / "selection.csv")
    assert len(selection) == 16 and selection["selected"].sum() == 1


def test_standardisation_travels_with_the_model(fitted, table):
    """Log densities of raw rows from the saved model equal a direct scipy evaluation of the
    mixture mapped back to the data's units."""
    _, frame = table
    clustering = load(fitted / "model.bgmm")
    assert isinstance(clustering, Clustering) and clustering.input_scaling_ is not None
    x = frame[["eruptions", "waiting"]].to_numpy()
    em = clustering.em_model_
    centre, scale = clustering.input_scaling_.center, clustering.input_scaling_.scale
    density = sum(w * multivariate_normal(m * scale + centre, c * np.outer(scale, scale)).pdf(x)
                  for w, m, c in zip(em.weights_, em.means_, em.full_covariances(), strict=True))
    assigned = clustering.assign(frame)
    np.testing.assert_allclose(assigned["log_density"], np.log(density), rtol=1e-10)


def test_predict_reproduces_the_fit_and_scores_new_rows(fitted, table, tmp_path):
    path = table[0]
    out = tmp_path / "pred.csv"
    assert main(["predict", str(fitted / "model.bgmm"), str(path), "--out", str(out),
                 "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(fitted / "assignments.csv"))
    far = pd.DataFrame({"eruptions": [4.4, 30.0], "waiting": [80.0, 700.0]})
    far_path = tmp_path / "far.parquet"
    far.to_parquet(far_path)
    assert main(["predict", str(fitted / "model.bgmm"), str(far_path), "--out", str(out),
                 "--quiet"]) == 0
    scored = pd.read_csv(out)
    assert scored["anomaly"].tolist() == [False, True]


def test_report_command(fitted, table, tmp_path):
    path, _ = table
    assert main(["report", str(fitted / "model.bgmm"), str(path), "--out", str(tmp_path),
                 "--quiet"]) == 0
    assert "<img" in (tmp_path / "report.html").read_text()


def test_fit_reads_parquet_with_columns(tmp_path, faithful):
    path = tmp_path / "d.parquet"
    faithful.to_parquet(path)
    assert main(["fit", str(path), "--columns", "waiting", "--k", "2", "--covariance", "full",
                 "--quiet", "--out", str(tmp_path / "o")]) == 0
    model = load(tmp_path / "o" / "model.bgmm")
    assert model.columns_ == ["waiting"] and model.em_model_.n_components == 2


def _run(args):
    return subprocess.run([sys.executable, "-m", "bayesgmm", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("case, needle", [
    ("missing", "does not exist"),
    ("unknown", "unknown column 'nope'"),
    ("text", "column 'id' is not numeric"),
    ("empty", "is empty"),
    ("header", "no rows"),
    ("nan", "waiting"),
])
def test_errors_are_one_line(case, needle, tmp_path, table, faithful, capsys):
    path = table[0]
    columns = []
    if case == "missing":
        path = tmp_path / "absent.csv"
    elif case == "unknown":
        columns = ["--columns", "eruptions,nope"]
    elif case == "text":
        columns = ["--columns", "id,waiting"]
    elif case == "empty":
        path = tmp_path / "empty.csv"
        path.write_text("")
    elif case == "header":
        path = tmp_path / "header.csv"
        path.write_text("eruptions,waiting\n")
    elif case == "nan":
        broken = faithful.copy()
        broken.loc[5, "waiting"] = np.nan
        path = tmp_path / "nan.csv"
        broken.to_csv(path, index=False)
    args = ["fit", str(path), *columns, "--quiet", "--out", str(tmp_path / "o")]
    if case == "missing":  # once through a real process: ``python -m bayesgmm``'s exit code
        result = _run(args)
        code, stderr = result.returncode, result.stderr
    else:  # the same main() in this process (an uncaught exception would fail the test)
        code = main(args)
        stderr = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesgmm: error:") and needle in lines[0]


def test_predict_rejects_a_model_of_another_kind(tmp_path, faithful, table, capsys):
    from bayesgmm import GaussianMixture

    model = GaussianMixture(2).fit(faithful).save(tmp_path / "gm.bgmm")
    code = main(["predict", str(model), str(table[0]), "--out", str(tmp_path / "p.csv")])
    assert code == 2 and "not a model written by 'bayesgmm fit'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "predict", "report", "demo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--quiet" in capsys.readouterr().out

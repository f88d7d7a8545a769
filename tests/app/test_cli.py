"""The command line: ``bayesgmm demo`` and ``python -m bayesgmm``."""

import subprocess
import sys

import pytest

from bayesgmm.app.cli import main


@pytest.mark.slow
def test_demo_prints_the_selection_and_the_fit(capsys, tmp_path, monkeypatch):
    """``bayesgmm demo`` with short chains (~30 s): the selection table, the selected model,
    the Bayesian fit's summaries and the comparison, and the four files it writes."""
    monkeypatch.setenv("BAYESGMM_SMALL", "1")  # short chains: the same code path, faster
    assert main(["demo", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} >= {"assignments.csv", "model.bgmm",
                                                    "selection.csv", "report.html"}
    for needle in ("Posterior over the number of occupied clusters", "Diagnostics",
                   "EM (BIC) vs Bayesian", "beside the prior the model implies for 272 rows",
                   "minimising the posterior expected variation of information",
                   "belong least surely"):
        assert needle in out
    # The report's path is printed, and the page has the new sections.
    assert f"The report (open it in a browser): {(tmp_path / 'report.html').resolve()}" in out
    page = (tmp_path / "report.html").read_text()
    assert "Which rows belong together" in page and "prior and posterior" in page
    assert "Top of the selection table (36 models" in out
    for needle in ("covariance_type", "icl", "degenerate", "Selected model", "weight",
                   "mean eruptions", "mean waiting", "BIC:", "log-likelihood:",
                   "covariance of component 1"):
        assert needle in out
    # The selected model is the table's first row.
    first = out.split("Top of the selection table")[1].splitlines()[2].split()
    assert f"GaussianMixture(n_components={first[1]}, covariance_type='{first[0]}')" in out


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "bayesgmm", "demo", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--seed" in result.stdout


def test_unknown_command_fails_cleanly():
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code != 0

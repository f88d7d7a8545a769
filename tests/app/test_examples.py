"""The anomaly-scoring and minibatch-VI examples run and give what they should. (The examples
that mirror the notebooks run in tests/app/test_notebooks.py, right after their notebook;
multihost_em.py runs in tests/engine/test_parallel.py.)"""

import runpy

import pytest

from tests.helpers import ROOT

EXAMPLES = ROOT / "examples"


def test_anomaly_example(capsys):
    runpy.run_path(str(EXAMPLES / "anomaly_scoring.py"), run_name="__main__")
    out = capsys.readouterr().out
    # A short eruption followed by a 95-minute wait is unlike any Old Faithful eruption.
    assert "anomaly threshold" in out
    last_row = next(line for line in out.splitlines() if line.strip().startswith("1.000"))
    assert last_row.split()[-1] == "True"
    for centre in ("2.000", "4.500"):  # rows at the two big clusters' centres
        row = next(line for line in out.splitlines() if line.strip().startswith(centre))
        assert row.split()[-1] == "False"


@pytest.mark.slow
def test_minibatch_vi_example_recovers_the_simulated_clusters():
    """examples/minibatch_svi.py at 20,000 rows with 1,024-row minibatches (its default: 1e6
    rows, above the automatic switch to stochastic VI), on six simulated clusters of known
    truth: the restarts find six clusters, stochastic VI stops on its own, and its clustering
    and held-out fit are as good as EM's with the true K."""
    example = runpy.run_path(str(EXAMPLES / "minibatch_svi.py"))
    result = example["run"](20_000, subsample_size=1024)
    assert result["algorithm"] == "svi" and result["converged"]
    assert result["steps"] < 20_000
    assert result["p_k_mode"].startswith("6 ")
    assert result["ari"] > 0.85
    assert result["ari"] >= result["em_true_k_ari"] - 0.03
    assert result["heldout_loglik"] >= result["em_true_k_heldout_loglik"] - 0.01
    assert 6 <= result["components_over_1pct"] <= 8

"""The anomaly-scoring and minibatch-VI examples run and give what they should. (The examples
that mirror the notebooks run in tests/test_notebooks.py, right after their notebook;
multihost_em.py runs in tests/test_parallel.py.)"""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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


def test_minibatch_vi_example_recovers_the_simulated_clusters():
    """examples/minibatch_svi.py at 20,000 rows with 1,024-row minibatches (its defaults:
    1e6 and 4,096), on six simulated clusters of known truth. Minibatch VI
    stops on its own, and its clustering and held-out fit are as good as EM's with the true K
    (measured with 4,096-row minibatches: ARI 0.918 vs 0.903, held-out equal to 5
    digits)."""
    example = runpy.run_path(str(EXAMPLES / "minibatch_svi.py"))
    # EM start with K=6 given (the default's BIC sweep over K=1..15 is tested elsewhere and
    # would add a compile)
    result = example["run"](20_000, subsample_size=1024, init_components=6)
    assert result["converged"]
    assert result["steps"] < 20_000
    assert result["ari"] > 0.85
    assert result["ari"] >= result["em_true_k_ari"] - 0.03
    assert result["heldout_loglik"] >= result["em_true_k_heldout_loglik"] - 0.01
    assert 6 <= result["components_over_1pct"] <= 8

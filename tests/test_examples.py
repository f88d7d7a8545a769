"""The anomaly-scoring example runs and flags what it should. (The examples that mirror the
notebooks run in tests/test_notebooks.py, right after their notebook.)"""

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

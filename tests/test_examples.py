"""Every example script runs and prints what it promises."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_faithful_example(capsys):
    runpy.run_path(str(EXAMPLES / "faithful_em.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "spherical" in out and "component sizes" in out


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

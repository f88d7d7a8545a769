"""Every example script runs and prints what it promises."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_faithful_example(capsys):
    runpy.run_path(str(EXAMPLES / "faithful_em.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "spherical" in out and "component sizes" in out

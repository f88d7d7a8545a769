"""The command line: ``bayesgmm demo`` and ``python -m bayesgmm``."""

import subprocess
import sys

import pytest

from bayesgmm.cli import main


def test_demo_prints_the_fit(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    # mclust's VVV, G=2 fit of faithful has log-likelihood -1130.264 (a published value).
    assert "log-likelihood: -1130.26" in out
    for needle in ("weight", "mean eruptions", "mean waiting", "BIC:", "size",
                   "covariance of component 1"):
        assert needle in out


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "bayesgmm", "demo", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--seed" in result.stdout


def test_unknown_command_fails_cleanly():
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code != 0

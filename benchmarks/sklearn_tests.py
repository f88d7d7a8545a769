"""Run scikit-learn's own ``GaussianMixture`` tests against bayesgmm's ``GaussianMixture``.

The test module installed with scikit-learn (``sklearn/mixture/tests/test_gaussian_mixture.py``)
is imported, its ``GaussianMixture`` name is replaced by bayesgmm's, and pytest runs it. The
tests of scikit-learn's private functions (sufficient statistics, Cholesky helpers) and of the
array API exercise scikit-learn's own code either way; the rest exercise bayesgmm. The summary
lists what failed, for the deviations table in ``benchmarks/README.md``.

    .venv/bin/python benchmarks/sklearn_tests.py [extra pytest arguments]
"""

from __future__ import annotations

import sys

import pytest

MODULE = "sklearn.mixture.tests.test_gaussian_mixture"


class UseBayesgmm:
    """pytest plugin: point the scikit-learn test module's ``GaussianMixture`` at ours."""

    def pytest_collection_modifyitems(self, items):
        import importlib

        from bayesgmm import GaussianMixture

        module = importlib.import_module(MODULE)
        module.GaussianMixture = GaussianMixture


def main(argv: list[str]) -> int:
    # Warnings as scikit-learn's own run treats them (shown, not errors): this project's
    # pytest configuration, read from the working directory, makes every warning an error,
    # and bayesgmm's advice (e.g. "reg_covar exceeds 1% of the variance") would then fail
    # scikit-learn tests that only check results.
    return pytest.main(["--pyargs", MODULE, "-q", "-p", "no:cacheprovider", "-rf",
                        "-W", "default", "-W", "ignore::DeprecationWarning", *argv],
                       plugins=[UseBayesgmm()])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

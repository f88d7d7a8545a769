"""Where one covariance type of the model-selection sweep spends its time (warm, no compile).

Usage: ``.venv/bin/python benchmarks/profile_sweep.py [N]`` (default N = 100,000, D = 8).

Runs the full-covariance batch of the default grid (K = 1..9 x 5 restarts, padded to 9
components) with ``max_iter`` 0, 1 and 10, for point-seeded and k-means starts, and prints the
warm time of each: the differences separate initialisation, per-iteration and fixed costs.
"""

import sys
import time
import warnings

import numpy as np
from run import make_problem

from bayesgmm import GaussianMixture
from bayesgmm.core.covariance import get_family
from bayesgmm.core.init import init_draws
from bayesgmm.preprocessing import compute_context
from bayesgmm.training import TrainingData


def main() -> None:
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    warnings.simplefilter("ignore")
    x = make_problem(n_rows, 8, 4, seed=2)[0]
    data = TrainingData.prepare(x, GaussianMixture(9), 9, 1e-6)
    family = get_family("full")
    active = np.repeat(np.arange(9)[None] < np.arange(1, 10)[:, None], 5, axis=0)
    with compute_context(np.float64):
        for init in ("random_from_data", "kmeans"):
            for max_iter in (0, 1, 10):
                for _ in range(2):  # the first call compiles
                    start = time.perf_counter()
                    draws = init_draws(0, len(active), init, 9)
                    result = data.fit(draws, active, family=family, dtype=np.float64,
                                      reg_covar=1e-6, tol=1e-3, init=init, max_iter=max_iter,
                                      summarise=max_iter > 0)
                    elapsed = time.perf_counter() - start
                print(f"{init:17s} max_iter={max_iter:2d}  warm {elapsed:6.2f} s  "
                      f"iterations run {int(np.max(result.state.n_iter))}")


if __name__ == "__main__":
    main()

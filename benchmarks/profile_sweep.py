"""Where the model-selection sweep spends its time: each compiled batch, cold and warm.

Usage: ``.venv/bin/python benchmarks/profile_sweep.py [N]`` (default N = 100,000, D = 8).

Runs the default grid (K = 1..9 x 4 types x 5 restarts) twice in one process and prints the
wall time of every batch :func:`bayesgmm.select_model` runs (screening on the sample, then all
rows, when N > 20,000; both batches share one compiled program): the first sweep includes
compilation, the second does not, so their difference is the compile time of each batch.
"""

import sys
import time
import warnings

from run import make_problem

from bayesgmm import select_model
from bayesgmm.engine.training import TrainingData


def main() -> None:
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    warnings.simplefilter("ignore")
    x = make_problem(n_rows, 8, 4, seed=2)[0]
    fit = TrainingData.fit

    def timed_fit(self, config, fits, **options):
        start = time.perf_counter()
        result = fit(self, config, fits, **options)
        rows = (f"{self.n_rows:,} rows" if fits.final is None or fits.final else
                f"the sample ({config.sample_blocks} x {self.block_rows:,} rows)")
        print(f"  batch of {len(fits.active)} fits on {rows}: "
              f"{time.perf_counter() - start:5.2f} s, up to {int(result.state.n_iter.max())} "
              "EM iterations", flush=True)
        return result

    TrainingData.fit = timed_fit
    for label in ("first sweep (compiles)", "second sweep (compiled)"):
        print(label)
        start = time.perf_counter()
        select_model(x, n_init=5, random_state=0)
        print(f"  total {time.perf_counter() - start:5.2f} s", flush=True)


if __name__ == "__main__":
    main()

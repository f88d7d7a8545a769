"""Where a NUTS fit on Old Faithful spends its time: each stage of ``fit``, cold and warm.

Usage: ``.venv/bin/python benchmarks/profile_bayes.py [SEED]``

Fits ``BayesianGaussianMixture(10)`` (the benchmark's settings: 2 chains x (500 + 500)) twice
in one process and prints the wall time of each stage: the EM start, the inference, the
relabelling, the stored summaries and the diagnostics check. The first fit includes
compilation, the second does not.
"""

import sys
import time
import warnings

from bayesgmm import BayesianGaussianMixture, load_faithful

STAGES = ("_em_start", "_infer", "_relabelled_draws", "_store", "_warn_about_diagnostics")


def timed(name, method):
    def run(*args, **kwargs):
        start = time.perf_counter()
        result = method(*args, **kwargs)
        print(f"  {name:24s} {time.perf_counter() - start:6.2f} s", flush=True)
        return result
    return run


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    warnings.simplefilter("ignore")
    for name in STAGES:
        setattr(BayesianGaussianMixture, name, timed(name, getattr(BayesianGaussianMixture, name)))
    data = load_faithful()
    for label in ("first fit (compiles)", "second fit (compiled)"):
        print(label)
        start = time.perf_counter()
        BayesianGaussianMixture(10, random_state=seed, progress_bar=False).fit(data)
        print(f"  {'total':24s} {time.perf_counter() - start:6.2f} s", flush=True)


if __name__ == "__main__":
    main()

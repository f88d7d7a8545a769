"""How long the default Gibbs fit takes to pass its convergence rule, by split-merge budget
(issue #19: the warm-fit goal of <= 2 s on Old Faithful).

Usage: ``.venv/bin/python benchmarks/split_merge_budget.py`` (writes the
``split-merge-budget`` block of ``benchmarks/README.md``; about eight minutes)

Old Faithful, standardised, the default model (full covariances, T = 10, mixture of finite
mixtures) and run length (4 chains, 500 warm-up sweeps, 500 draws thinned by 5, extended
100 draws at a time until every label-invariant R-hat <= 1.01 and bulk ESS >= 400; here up
to 10 extensions of 500 draws instead of 5, so that no seed stops at the cap). Each budget
(proposals per sweep x tries per proposal) is compiled once (a throwaway seed), then fitted
at seeds 0-5, warm, through ``run_gibbs`` (sampling and the convergence checks, not the
relabelling and summaries after them). Columns: mean and range of the warm seconds, the
extension blocks each seed needed, and the mean P(K+ = 3) (the answer should not depend on
the budget). The ratio is the budget's mean time over the default's, in the same run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("BAYESGMM_COMPILE_CACHE", "off")  # every budget compiles its own

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_readme

from bayesgmm import load_faithful
from bayesgmm.core.partition import WeightPrior
from bayesgmm.engine.bayes.gibbs import DRAWS_PER_BLOCK, SamplerSettings, run_gibbs

SEEDS = range(6)
#: (proposals per sweep, tries per proposal); the first is the default on Old Faithful
BUDGETS = [(4, 2), (4, 1), (2, 2), (2, 1), (1, 2), (1, 1)]


def main() -> None:
    x = load_faithful().to_numpy()
    y = (x - x.mean(axis=0)) / x.std(axis=0)
    weights = WeightPrior.named("mixture_of_finite_mixtures")
    rows = ["| proposals x tries | mean warm s | range s | extension blocks (seeds 0-5) "
            "| mean P(K+ = 3) | ratio to default |", "|---|---:|---:|---|---:|---:|"]
    anchor = None
    for moves, tries in BUDGETS:
        settings = SamplerSettings(max_extensions=10, split_merge_moves=moves,
                                   split_merge_tries=tries)
        run_gibbs(y, "full", weights, 10, 99, settings, False)  # compile
        times, blocks, p3 = [], [], []
        for seed in SEEDS:
            start = time.perf_counter()
            result = run_gibbs(y, "full", weights, 10, seed, settings, False)
            times.append(time.perf_counter() - start)
            counts = result.records.counts
            blocks.append((counts.shape[1] - settings.num_samples) // DRAWS_PER_BLOCK)
            p3.append(float(((counts > 0).sum(axis=-1) == 3).mean()))
        mean = float(np.mean(times))
        anchor = anchor or mean
        rows.append(f"| {moves} x {tries} | {mean:.2f} | {min(times):.2f}-{max(times):.2f} | "
                    f"{', '.join(map(str, blocks))} | {np.mean(p3):.3f} | {mean / anchor:.2f} |")
        print(rows[-1], flush=True)
    write_readme("split-merge-budget", "\n".join(rows))


if __name__ == "__main__":
    main()

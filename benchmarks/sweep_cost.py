"""What one sweep of the Gibbs sampler costs, part by part (issue #19: the warm-fit goal).

Usage: ``.venv/bin/python benchmarks/sweep_cost.py`` (writes the ``sweep-cost`` block of
``benchmarks/README.md``; about a minute)

Old Faithful, standardised, the default model (full covariances, T = 10, mixture of finite
mixtures) and the default sampler settings at N = 272 (4 split-merge proposals of 2 tries per
sweep, one in four the collapsed kernel's, 5 launch iterations, 10 concentration steps),
against variants that each remove or shrink one part, and against the data padded with
zero-weight rows. One chain group of 2 chains, as each of the default fit's two threads runs,
float64, with bayesgmm's compile cache
off. For each variant: the first call (tracing
and compiling the start and a block of 500 sweeps, then running it), and the best of three
warm blocks of 500 sweeps, per sweep. The ratio is the variant's warm time per sweep over the
default's, measured in the same run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("BAYESGMM_COMPILE_CACHE", "off")  # every variant compiles

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_readme

from bayesgmm import load_faithful
from bayesgmm.core.gibbs import GibbsConfig
from bayesgmm.core.init import init_draws
from bayesgmm.core.partition import WeightPrior
from bayesgmm.core.variates import make_seed
from bayesgmm.engine.bayes import gibbs

SWEEPS, THINNING = 500, 5
DEFAULT = dict(split_merge_moves=4, split_merge_tries=2, launch_iterations=5,
               concentration_steps=gibbs.CONCENTRATION_STEPS)
#: name -> (sampler settings, rows the 272 are padded to with zero-weight rows; None: the
#: default padding, none at 272)
VARIANTS = {
    "default (4 proposals x 2 tries, one in four collapsed, 5 launch iterations, 10 "
    "concentration steps)":
        (DEFAULT, None),
    "no split-merge proposals": ({**DEFAULT, "split_merge_moves": 0}, None),
    "no collapsed kernel (launched, launched, launched, moment)":
        ({**DEFAULT, "split_merge_kernels": (0, 0, 0, 1)}, None),
    "1 proposal x 2 tries": ({**DEFAULT, "split_merge_moves": 1}, None),
    "4 proposals x 1 try": ({**DEFAULT, "split_merge_tries": 1}, None),
    "1 concentration step": ({**DEFAULT, "concentration_steps": 1}, None),
    "default, padded to 512 rows": (DEFAULT, 512),
    "default, padded to 1,024 rows (EM's one block for small data)": (DEFAULT, 1024),
}


def measure(config: GibbsConfig, data, hyper, draws) -> tuple[float, float]:
    """(first call s, warm ms per sweep) of blocks of SWEEPS sweeps of 2 chains."""
    block = dict(config=config, n_kept=SWEEPS // THINNING)
    start = time.perf_counter()
    states = gibbs._start(np.asarray(draws), np.array([1, 2]), data, hyper, config=config)
    out = jax.block_until_ready(gibbs._block(make_seed(1), states, data, hyper,
                                             np.int32(THINNING), **block))
    first = time.perf_counter() - start
    best = np.inf
    for repeat in range(3):
        start = time.perf_counter()
        out = jax.block_until_ready(gibbs._block(make_seed(2 + repeat), out[0], data, hyper,
                                                 np.int32(THINNING), **block))
        best = min(best, time.perf_counter() - start)
    return first, 1000 * best / SWEEPS


def main() -> None:
    x = load_faithful().to_numpy()
    y = (x - x.mean(axis=0)) / x.std(axis=0)
    weights = WeightPrior.named("mixture_of_finite_mixtures")
    hyper_np = gibbs.default_hyperparameters(y, "full", weights, 10)
    rows = ["| variant | first call s | warm ms per sweep | ratio to default |",
            "|---|---:|---:|---:|"]
    with jax.enable_x64(True):
        hyper = jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a, np.float64)),
                                       hyper_np)
        draws = init_draws(0, 2, "k-means++", 10)
        anchor = None
        for name, (settings, n_padded) in VARIANTS.items():
            data = gibbs.mixture_data(y, "full", n_padded)
            config = GibbsConfig("full", 10, **settings)
            first, per_sweep = measure(config, data, hyper, draws)
            anchor = anchor or per_sweep
            rows.append(f"| {name} | {first:.2f} | {per_sweep:.3f} | {per_sweep / anchor:.2f} |")
            print(rows[-1], flush=True)
    write_readme("sweep-cost", "\n".join(rows))


if __name__ == "__main__":
    main()

"""Simulation-based calibration (Talts et al. 2018) of the label-invariant quantities.

    python benchmarks/sbc.py [--replicates 100] [--draws 99]

For each replicate: draw (alpha, weights, means, scales) from the DP model's prior (T=4, D=1,
standardised units, so the model is exactly the one the data come from), simulate N=60 points,
fit NUTS (one chain, started from a one-component EM fit, 300 warm-up), thin to ``draws`` draws, and
record the rank of the true value among the draws for alpha and for the log-likelihood of the
simulated data. If the posterior is calibrated, ranks are uniform on 0..draws; a chi-square
test over 10 bins reports the p-value.
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive
from scipy import stats

from bayesgmm.engine.bayes.inference import NutsSettings, run_nuts
from bayesgmm.engine.bayes.initial import initial_sites
from bayesgmm.engine.bayes.models import (
    ModelSpec,
    draws_from_sites,
    mixture_distribution,
    mixture_model,
)
from bayesgmm.estimators.gaussian import GaussianMixture

N_POINTS = 60
SPEC = ModelSpec(4, 1, covariance_type="diag")


def _log_likelihood(y, sites) -> np.ndarray:
    draws = draws_from_sites(sites, SPEC)
    return np.asarray(jax.vmap(lambda lw, m, s: mixture_distribution(
        type(draws)(lw, m, s)).log_prob(y).sum())(*draws))


def one_replicate(seed: int, n_draws: int) -> tuple[int, int]:
    key = jax.random.PRNGKey(seed)
    prior = Predictive(mixture_model, num_samples=1)(key, jnp.zeros((N_POINTS, 1)), SPEC)
    truth = {k: v[0] for k, v in prior.items() if k != "y"}        # "y" is the observed input
    y = mixture_distribution(draws_from_sites(truth, SPEC)).sample(
        jax.random.fold_in(key, 2), (N_POINTS,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = GaussianMixture(1, random_state=seed).fit(np.asarray(y))  # never degenerate
    start = initial_sites(em.weights_, em.means_, em.full_covariances(), SPEC, N_POINTS)
    result = run_nuts(y, SPEC, start, jax.random.fold_in(key, 1),
                      NutsSettings(num_warmup=300, num_samples=3 * n_draws, num_chains=1,
                                   target_accept_prob=0.8, max_tree_depth=10),
                      progress_bar=False)
    sites = {k: jnp.asarray(v[0, ::3]) for k, v in result.sites.items()}
    alpha_rank = int(np.sum(np.asarray(sites["alpha"]) < float(truth["alpha"])))
    true_ll = _log_likelihood(y, {k: v[None] for k, v in truth.items()})[0]
    ll_rank = int(np.sum(_log_likelihood(y, sites) < true_ll))
    return alpha_rank, ll_rank


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--draws", type=int, default=99)
    args = parser.parse_args()
    with jax.enable_x64(True):
        ranks = np.array([one_replicate(seed, args.draws) for seed in range(args.replicates)])
    for name, column in zip(("alpha", "log_likelihood"), ranks.T, strict=True):
        counts = np.histogram(column, bins=10, range=(0, args.draws + 1))[0]
        p_value = stats.chisquare(counts).pvalue
        print(f"{name}: rank histogram {counts.tolist()}, chi-square p = {p_value:.3f}")


if __name__ == "__main__":
    main()

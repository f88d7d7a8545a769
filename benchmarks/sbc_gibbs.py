"""Simulation-based calibration (Talts et al. 2018) of the Gibbs sampler: K+, the
concentration and the log-likelihood.

    python benchmarks/sbc_gibbs.py [--replicates 200] [--draws 99] [--thin 20] [--warmup 500]
        [--seed 0] [--kernels 0,2,0,1]

Each replicate draws (S0, alpha, K, weights, components, labels, rows) from the NumPyro
statement of the model (:func:`bayesgmm.engine.bayes.conjugate.conjugate_mixture_model`, mixture of
finite mixtures, full covariances, D = 2, T = 6, N = 40, fixed data-free hyperparameters), then
runs one chain of the sampler on its rows from a k-means start with two clusters (not from the
truth): 500 warm-up sweeps, then ``draws`` states ``thin`` sweeps apart. For each quantity the
rank of the true value among the draws (ties of the discrete K+ broken at random) is uniform on
0..draws when the sampler is calibrated; a chi-square test over 10 bins gives the p-value.
All replicates run as one vmapped program (each chain its own data). ``--kernels`` are the
split-merge kernels (0 launched, 1 moment matching, 2 collapsed; the default is the sampler's,
all three).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive
from scipy import stats

from bayesgmm.core.conjugate_draws import ScaleHyperprior
from bayesgmm.core.covariance import FAMILIES
from bayesgmm.core.gibbs import GibbsConfig, Hyperparameters, MixtureData, init_state, sweep
from bayesgmm.core.init import init_draws
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.partition import WeightPrior, log_k_prior
from bayesgmm.core.stats import make_features
from bayesgmm.core.variates import make_seed, split
from bayesgmm.engine.bayes.conjugate import conjugate_mixture_model

N_ROWS, N_DIMS, N_SLOTS = 40, 2, 6
WARMUP = 500


def hyperparameters(weights: WeightPrior) -> Hyperparameters:
    scale = 0.4 * np.eye(N_DIMS)
    prior = ConjugatePrior(np.zeros(N_DIMS), np.asarray(0.3), np.asarray(N_DIMS + 4.0),
                           scale * N_DIMS)
    return Hyperparameters(prior, ScaleHyperprior(np.asarray(float(N_DIMS)), scale,
                                                  np.linalg.inv(scale)),
                           log_k_prior(weights, N_SLOTS), weights.parameters())


def log_likelihood(y, log_weights, means, covariances):
    """sum_i log sum_k w_k N(y_i | mu_k, Sigma_k) for one replicate."""
    diff = y[:, None, :] - means[None]
    solved = jnp.linalg.solve(covariances[None], diff[..., None])[..., 0]
    log_det = jnp.linalg.slogdet(covariances)[1]
    log_density = -0.5 * (jnp.sum(diff * solved, -1) + log_det + N_DIMS * jnp.log(2 * jnp.pi))
    return jnp.sum(jax.nn.logsumexp(log_density + log_weights, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--draws", type=int, default=99)
    parser.add_argument("--thin", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--seed", type=int, default=0, help="replicate set (0: the default)")
    parser.add_argument("--kernels", default="0,2,0,1",
                        help="split-merge kernels, comma-separated (repeat one to weight it)")
    args = parser.parse_args()
    kernels = tuple(int(k) for k in args.kernels.split(","))
    weights = WeightPrior.named("mixture_of_finite_mixtures")
    config = GibbsConfig("full", N_SLOTS, split_merge_moves=2, split_merge_tries=2,
                         launch_iterations=5, split_merge_kernels=kernels,
                         concentration_steps=10)
    family = FAMILIES["full"]
    start = time.perf_counter()
    with jax.enable_x64(True):
        hyper = jax.tree_util.tree_map(jnp.asarray, hyperparameters(weights))
        truth = Predictive(conjugate_mixture_model, num_samples=args.replicates)(
            jax.random.PRNGKey(2026 + args.seed), N_ROWS, hyper, config, weights)
        y = truth["y"]                                                       # (R, N, D)
        gamma = jnp.where(jnp.arange(N_SLOTS) < truth["n_components_minus_one"][:, None] + 1,
                          truth["weight_gamma"], 0.0)
        true_log_weights = jnp.log(gamma / gamma.sum(-1, keepdims=True))
        true_values = np.stack([
            np.asarray([len(np.unique(lab)) for lab in np.asarray(truth["labels"])], float),
            np.log(np.asarray(truth["concentration"])),
            np.asarray(jax.vmap(log_likelihood)(y, true_log_weights, truth["means"],
                                                truth["covariances"]))], axis=1)   # (R, 3)
        features = jax.vmap(lambda rows: make_features(rows, family))(y)
        draws = jnp.asarray(init_draws(0, args.replicates, "k-means++", N_SLOTS))

        def one(seed, state, feature_rows):
            data = MixtureData(feature_rows, jnp.ones(N_ROWS))
            batch = jax.tree_util.tree_map(lambda a: a[None], state)
            new, info = sweep(seed, batch, data, hyper, config)
            return jax.tree_util.tree_map(lambda a: a[0], new), info.log_likelihood[0]

        @jax.jit
        def run(seed):
            states = jax.vmap(lambda d, f: init_state(
                d, jnp.asarray(2), MixtureData(f, jnp.ones(N_ROWS)), hyper, config))(
                draws, features)

            def sweeps(states, seed, n):
                def body(carry, s):
                    return jax.vmap(one)(split(s, args.replicates), carry, features)[0], None
                return jax.lax.scan(body, states, split(seed, n))[0]

            warm_seed, draw_seed = split(seed, 2)
            states = sweeps(states, warm_seed, args.warmup)

            def record(states, s):
                """``thin`` sweeps; the state entering the last one is the draw (its
                log-likelihood is what that sweep's assignment step computes)."""
                move_seed, last_seed = split(s, 2)
                states = sweeps(states, move_seed, args.thin - 1)
                new, log_lik = jax.vmap(one)(split(last_seed, args.replicates), states,
                                             features)
                return new, jnp.stack([jnp.sum(states.counts > 0, -1).astype(jnp.float64),
                                       jnp.log(states.concentration), log_lik], axis=1)

            _, recorded = jax.lax.scan(record, states, split(draw_seed, args.draws))
            return recorded                                                  # (L, R, 3)

        recorded = np.asarray(run(make_seed(7 + args.seed)))
    elapsed = time.perf_counter() - start
    rng = np.random.default_rng(0)
    names = ["K+ (occupied clusters)", "log concentration", "log-likelihood of the data"]
    print(f"{args.replicates} replicates, {args.warmup} warm-up sweeps, {args.draws} draws "
          f"({args.thin} sweeps apart, replicate set {args.seed}, kernels {kernels}), "
          f"{elapsed:.0f} s\n")
    print("| quantity | counts in 10 rank bins | chi-square p |")
    print("|---|---|---|")
    for q, name in enumerate(names):
        below = (recorded[:, :, q] < true_values[None, :, q]).sum(axis=0)
        ties = (recorded[:, :, q] == true_values[None, :, q]).sum(axis=0)
        ranks = below + np.floor(rng.random(args.replicates) * (ties + 1)).astype(int)
        counts = np.histogram(ranks, bins=10, range=(0, args.draws + 1))[0]
        p_value = stats.chisquare(counts).pvalue
        print(f"| {name} | {', '.join(map(str, counts))} | {p_value:.3f} |")


if __name__ == "__main__":
    main()

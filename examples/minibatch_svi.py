"""The Bayesian mixture on a million points: stochastic variational inference.

Above 100,000 rows ``method="vi"`` switches by itself to natural-gradient stochastic VI
(Hoffman et al. 2013): each step takes a minibatch of blocks of rows (10,000 rows by default,
``subsample_size`` to change it), scales its sufficient statistics to the whole data and moves
the variational parameters part of the way towards the coordinate update they imply, so the
work of a step depends on the batch size, not on the number of rows. A last coordinate-ascent
pass over all rows ends the fit. The memberships (``predict``) are ``q(z)``, one pass.

Run: ``.venv/bin/python examples/minibatch_svi.py [N_ROWS]`` (default 1,000,000). The
benchmark ``benchmarks/bayes.py --suite minibatch`` runs it and records time and quality.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGaussianMixture, GaussianMixture


def simulated(n_rows: int, seed: int = 0):
    """Six overlapping 4-D Gaussian clusters of unequal sizes, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(6, 4))
    weights = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    labels = rng.choice(6, size=n_rows, p=weights)
    factors = np.linalg.cholesky(np.stack([np.cov(rng.normal(size=(4, 40))) for _ in range(6)]))
    x = centres[labels] + np.einsum("nij,nj->ni", factors[labels], rng.normal(size=(n_rows, 4)))
    return x, labels


def run(n_rows: int = 1_000_000, seed: int = 0, subsample_size: int | None = None,
        **options) -> dict:
    """Fit VI (stochastic above 100,000 rows, or with ``subsample_size``) and, for
    comparison, EM with the true K; score both. ``options`` go to
    :class:`~bayesgmm.BayesianGaussianMixture`."""
    x, labels = simulated(n_rows + 50_000, seed)
    train, truth, test = x[:n_rows], labels[:n_rows], x[n_rows:]
    model = BayesianGaussianMixture(15, method="vi", subsample_size=subsample_size,
                                    max_steps=20_000, num_samples=100, num_chains=1,
                                    random_state=seed, progress_bar=False, **options)
    start = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    labels_bayes = model.predict(train)
    summary_seconds = time.perf_counter() - start
    posterior_k = model.n_clusters_posterior()
    start = time.perf_counter()
    em = GaussianMixture(6, n_init=3, random_state=seed).fit(train)
    em_seconds = time.perf_counter() - start
    return {
        "rows": n_rows,
        "fit_s": fit_seconds,
        "summaries_s": summary_seconds,
        "steps": model.inference_info_["n_iter"],
        "algorithm": model.inference_info_["algorithm"],
        "converged": model.inference_info_["converged"],
        "ari": adjusted_rand_score(truth, labels_bayes),
        "components_over_1pct": int((model.weights_ > 0.01).sum()),
        "p_k_mode": f"{int(posterior_k.idxmax())} ({posterior_k.max():.2f})",
        "heldout_loglik": model.score(test),
        "em_true_k_s": em_seconds,
        "em_true_k_ari": adjusted_rand_score(truth, em.predict(train)),
        "em_true_k_heldout_loglik": em.score(test),
    }


def main() -> None:
    n_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    result = run(n_rows)
    print(f"VI ({result['algorithm']}) on {result['rows']:,} rows: {result['fit_s']:.0f} s for "
          f"{result['steps']} steps (converged: {result['converged']}), summaries "
          f"{result['summaries_s']:.0f} s")
    print(f"  posterior mode of K: {result['p_k_mode']}; components over 1%: "
          f"{result['components_over_1pct']}; ARI vs truth {result['ari']:.3f}; held-out "
          f"log-likelihood {result['heldout_loglik']:.3f} per row")
    print(f"EM with the true K=6: {result['em_true_k_s']:.0f} s, ARI "
          f"{result['em_true_k_ari']:.3f}, held-out {result['em_true_k_heldout_loglik']:.3f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()

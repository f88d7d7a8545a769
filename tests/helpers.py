"""Builders shared by the tests: simulated mixtures, direct runs of the compiled core, the
reference data sets, and scikit-learn-made parameters."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_iris, load_wine
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
)

from bayesgmm import load_faithful
from bayesgmm.core.stats import BlockedData, make_features

#: The documented trade-off of duck typing (README): scikit-learn warns, once per estimator,
#: that the class does not inherit from its BaseEstimator; its checks themselves pass.
NOT_INHERITED = "Estimator .* does not inherit from `sklearn.base.BaseEstimator`"

#: The repository's root folder.
ROOT = Path(__file__).resolve().parent.parent


def make_mixture(n=600, seed=0, separation=6.0):
    """Three well-separated 3-D Gaussian clusters with known labels."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [separation, 0.0, 1.0], [0.0, separation, -1.0]])
    covs = np.array([
        [[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]],
        [[0.6, -0.2, 0.0], [-0.2, 1.2, 0.0], [0.0, 0.0, 0.4]],
        [[0.9, 0.0, 0.3], [0.0, 0.7, 0.0], [0.3, 0.0, 1.1]],
    ])
    labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    x = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])
    return x, labels, means, covs


def run_core_batch(x, n_fits, n_components, init="random_from_data", max_iter=300, seed=0,
                   dtype=np.float64, covariance_type="full", reg_covar=1e-6, tol=1e-3):
    """Run the compiled core directly (all fits, no restart selection), as the estimator does.

    Returns the :class:`BatchResult` (numpy) and the :class:`AffineScaling` used.
    """
    import jax
    import jax.numpy as jnp

    from bayesgmm.core.covariance import get_family
    from bayesgmm.core.em import EMConfig, FitInputs, SharedInputs, fit_batch
    from bayesgmm.core.init import init_draws
    from bayesgmm.engine.preprocessing import AffineScaling, compute_context, to_blocks

    family = get_family(covariance_type)
    scaling = AffineScaling.fit(x)
    internal = scaling.transform(x)
    with compute_context(dtype):
        draws = jnp.asarray(init_draws(seed, n_fits, init, n_components), dtype)
        result = fit_batch(
            EMConfig(family, init, max_iter),
            FitInputs(draws, jnp.ones((n_fits, n_components), bool)),
            SharedInputs(to_blocks(internal, dtype, family),
                         jnp.asarray(reg_covar / scaling.scale**2, dtype),
                         jnp.asarray(tol, dtype), jnp.asarray(internal.var(axis=0), dtype)))
        return jax.device_get(result), scaling


DATASETS = {
    "synthetic": lambda: make_mixture()[0],
    "faithful": lambda: load_faithful().to_numpy(),
    "iris": lambda: load_iris().data,
    "wine": lambda: load_wine().data,
}


def random_params(family, k=4, d=3, seed=0):
    """Random parameters built through scikit-learn's own estimator (independent of ours)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, d)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -2.0]
    resp = rng.dirichlet(np.ones(k), size=200)
    weights, means, covs = _estimate_gaussian_parameters(x, resp, 1e-3, family.name)
    weights = weights / weights.sum()
    prec_chol = _compute_precision_cholesky(covs, family.name)
    return x, resp, weights, means, covs, prec_chol


def blocked(x, family, n_blocks=2):
    rows = x.shape[0] // n_blocks
    features = make_features(jnp.asarray(x[: rows * n_blocks]), family)
    return BlockedData(features.reshape(n_blocks, rows, -1), jnp.ones((n_blocks, rows)))

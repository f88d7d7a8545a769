"""The prior on the number of occupied clusters ``K+`` that a weight prior implies at ``N``.

Greve, Grün, Malsiner-Walli & Frühwirth-Schnatter (2022) show that what a mixture's weight
prior says about the number of *clusters* depends on ``N``: a Dirichlet process expects about
``c log N`` of them, a sparse finite mixture few, whatever ``T``. Showing this prior beside
the posterior says how much the data moved the answer.

Two ways, by the form of the weights:

* **Symmetric Dirichlet weights** (every prior of the Gibbs sampler; the sparse finite
  mixture of NUTS and VI): exact. For each ``K`` and concentration ``c`` the distribution of
  ``K+`` is the Pólya-urn recursion of :func:`~bayesgmm.core.partition.
  occupied_count_distribution`; it is summed over ``K`` with ``p(K)`` (the model's prior,
  truncated at ``T``) and integrated over ``c`` by Gauss-Legendre quadrature in the prior's
  probability scale (``c = F^-1(u)``), or taken at the fixed ``c``.
* **Truncated stick-breaking** (the Dirichlet process of NUTS, ADVI and VI): the urn depends
  on the whole vector of counts, so the prior is simulated: sticks, weights and multinomial
  counts of ``N`` points, ``PRIOR_SIMULATIONS`` times (standard error at most 0.0035).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.partition import WeightPrior, log_k_prior, occupied_count_distribution

#: Gauss-Legendre nodes of the integral over a random concentration.
QUADRATURE_NODES = 64
#: Prior simulations for stick-breaking weights.
PRIOR_SIMULATIONS = 20_000


class StickBreakingPrior(NamedTuple):
    """Truncated stick-breaking weights: ``v_k ~ Beta(1, c)`` (``k < T``), ``v_T = 1``, with
    ``c`` fixed (``concentration``) or ``c ~ Gamma(shape, rate)``."""

    concentration: float | None
    shape: float = 2.0
    rate: float = 4.0


def _concentration_distribution(kind: str, first: float, second: float):
    from scipy import stats

    if kind == "f":
        return stats.f(first, second)
    return stats.gamma(first, scale=1.0 / second)


def concentration_nodes(weights: WeightPrior) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes ``c_j`` and weights ``v_j`` (summing to 1) of the concentration's
    prior; one node of weight 1 when ``c`` is fixed."""
    if weights.concentration is not None:
        return np.array([float(weights.concentration)]), np.array([1.0])
    u, v = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    distribution = _concentration_distribution(*weights.concentration_prior)
    return distribution.ppf(0.5 * (u + 1.0)), 0.5 * v


def occupied_prior(n_samples: int, weights: WeightPrior, n_components: int) -> np.ndarray:
    """``P(K+ = k)`` for ``k = 1..T`` (T,) under a symmetric Dirichlet weight prior (the
    module docstring's exact method)."""
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} is invalid: it must be at least 1")
    c, quadrature = concentration_nodes(weights)
    k_values = np.arange(1, n_components + 1, dtype=np.float64)
    p_k = np.exp(log_k_prior(weights, n_components))                       # (T,) over K
    dynamic = 1.0 if weights.dynamic else 0.0
    gamma = c[:, None] / k_values[None, :] ** dynamic                      # (nodes, K)
    with jax.enable_x64(True):
        given = np.asarray(_occupied_counts(jnp.asarray(n_samples),
                                            jnp.asarray(np.broadcast_to(k_values, gamma.shape)),
                                            jnp.asarray(gamma)))
    mixed = np.einsum("j,k,jkm->m", quadrature, p_k, given)               # (T + 1,)
    return mixed[1:] / mixed[1:].sum()


@persistent_jit
def _occupied_counts(n_samples, n_components, gamma):
    """The urn recursion for every (node, K) pair (nodes, T) -> (nodes, T, T + 1); one
    compiled program per (nodes, T) serves every ``N`` and weight prior."""
    return occupied_count_distribution(n_samples, n_components, gamma, gamma.shape[-1])


def simulated_occupied_prior(n_samples: int, weights: StickBreakingPrior, n_components: int,
                             n_simulations: int = PRIOR_SIMULATIONS, seed: int = 0
                             ) -> np.ndarray:
    """``P(K+ = k)`` for ``k = 1..T`` (T,) under truncated stick-breaking weights, by
    simulating weights and the multinomial counts of ``N`` points."""
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r} is invalid: it must be at least 1")
    rng = np.random.default_rng(seed)
    if weights.concentration is None:
        c = rng.gamma(weights.shape, 1.0 / weights.rate, size=n_simulations)
    else:
        c = np.full(n_simulations, float(weights.concentration))
    sticks = rng.beta(1.0, c[:, None], size=(n_simulations, n_components))
    sticks[:, -1] = 1.0
    remaining = np.cumprod(np.hstack([np.ones((n_simulations, 1)), 1.0 - sticks[:, :-1]]),
                           axis=1)
    weights_draws = np.clip(sticks * remaining, 0.0, None)
    weights_draws /= weights_draws.sum(axis=1, keepdims=True)
    counts = rng.multinomial(n_samples, weights_draws)
    occupied = (counts > 0).sum(axis=1)
    return np.bincount(occupied, minlength=n_components + 1)[1:] / n_simulations


def side_by_side(prior: pd.Series, posterior: pd.Series, smallest: float = 0.001
                 ) -> pd.DataFrame:
    """Two rows, ``prior`` and ``posterior``, over the numbers of clusters where either
    reaches ``smallest`` (absent values are 0)."""
    both = pd.concat([prior.rename("prior"), posterior.rename("posterior")], axis=1)
    both = both.fillna(0.0).T
    return both.loc[:, (both >= smallest).any(axis=0)]


def prior_series(probabilities: np.ndarray, method: str, n_samples: int) -> pd.Series:
    """The prior as a Series indexed by ``n_clusters`` (1..T), with ``attrs`` ``method``
    ('exact' or 'simulation'), ``n_samples`` and the ``mean``."""
    index = pd.Index(np.arange(1, len(probabilities) + 1), name="n_clusters")
    series = pd.Series(probabilities, index=index, name="prior")
    series.attrs.update(method=method, n_samples=int(n_samples),
                        mean=float(np.dot(index.to_numpy(), probabilities)))
    return series

"""Priors on the mixture weights as priors on partitions: the (dynamic) mixture of finite
mixtures, and the finite symmetric Dirichlet that approximates a Dirichlet process.

One family covers every weight prior the Gibbs sampler offers. A mixture has ``K`` components
(``K`` random with prior ``p(K)`` on ``1..T``, or fixed at ``T``) and weights
``eta ~ Dirichlet(gamma_K, ..., gamma_K)`` (``K`` entries), with ``gamma_K = c / K``
(*dynamic*, Frühwirth-Schnatter, Malsiner-Walli & Grün 2021) or ``gamma_K = c`` (*static*;
Miller & Harrison 2018 when ``K`` is random). ``c`` is the concentration (fixed or with a
prior). Integrating the weights and the labels of the components out, a partition ``C`` of
``N`` points into ``K+`` blocks of sizes ``n_1..n_K+`` has prior probability

    p(C | c) = sum_{K >= K+} p(K) K! / (K - K+)! Gamma(K gamma_K) / Gamma(K gamma_K + N)
                 prod_j Gamma(n_j + gamma_K) / Gamma(gamma_K)

(the telescoping sampler's ``p(K | C)`` is the summand, normalised). Special cases:

* ``mixture_of_finite_mixtures`` (default): ``K - 1 ~ BNB(1, 4, 3)`` truncated at ``T``,
  dynamic, ``c ~ F(6, 3)``: the recommendation of Frühwirth-Schnatter et al. (2021). Its
  posterior on the number of occupied clusters ``K+`` does not inflate with ``N``.
* ``dirichlet_process``: ``K = T``, dynamic (``gamma = c / T``), ``c ~ Gamma(2, 4)``: the
  finite Dirichlet approximation of a DP with concentration ``c`` (Ishwaran & Zarepour 2002);
  as ``T`` grows, ``p(C | c)`` tends to the DP's ``c^K+ Gamma(c) / Gamma(c + N)
  prod Gamma(n_j)``.
* ``dirichlet_distribution`` (sparse finite mixture, Malsiner-Walli, Frühwirth-Schnatter &
  Grün 2016): ``K = T``, static, ``c = e0 ~ Gamma(10, 1000)``.

Everything here is a handful of ``lgamma`` evaluations over ``K = 1..T``: no data.

The functions take the prior as :class:`WeightParameters`, arrays rather than static settings
(a fixed ``K`` is a ``p(K)`` with all its mass on ``T``), so that one compiled sampler serves
every weight prior: ``compare_cluster_counts`` fits three of them to the same rows.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammaln

#: The named weight priors and their settings (see the module docstring).
WEIGHT_PRIORS = ("mixture_of_finite_mixtures", "dirichlet_process", "dirichlet_distribution")
#: Random-walk step on ``log c`` (telescope's ``s0`` for the F prior is 2.5; 1.5 for gammas).
CONCENTRATION_STEP = {"f": 2.5, "gamma": 1.5}


class WeightPrior(NamedTuple):
    """Static description of a weight prior (hashable: part of a compiled program's key).

    Attributes
    ----------
    random_k : whether ``K`` has the prior ``K - 1 ~ BNB(k_prior)`` (else ``K = T``)
    dynamic : ``gamma_K = c / K`` (else ``gamma_K = c``)
    concentration : fixed ``c``, or None to sample it under ``concentration_prior``
    concentration_prior : ``("f", d1, d2)`` (F distribution) or ``("gamma", shape, rate)``
    k_prior : ``(r, a, b)`` of the beta-negative-binomial prior on ``K - 1``
    """

    random_k: bool = True
    dynamic: bool = True
    concentration: float | None = None
    concentration_prior: tuple = ("f", 6.0, 3.0)
    k_prior: tuple = (1.0, 4.0, 3.0)

    @classmethod
    def named(cls, name: str, concentration: float | None = None) -> WeightPrior:
        """The prior called ``name`` in :data:`WEIGHT_PRIORS`, with ``c`` fixed if given."""
        if name == "mixture_of_finite_mixtures":
            return cls(True, True, concentration, ("f", 6.0, 3.0))
        if name == "dirichlet_process":
            return cls(False, True, concentration, ("gamma", 2.0, 4.0))
        if name == "dirichlet_distribution":
            return cls(False, False, concentration, ("gamma", 10.0, 1000.0))
        raise ValueError(f"weight prior {name!r} is not one of {WEIGHT_PRIORS}")

    def initial_concentration(self) -> float:
        """A starting value: the fixed ``c``, or its prior's median-like centre."""
        if self.concentration is not None:
            return float(self.concentration)
        kind, first, second = self.concentration_prior
        if kind == "f":
            return 1.0
        return first / second

    def parameters(self) -> WeightParameters:
        """The prior as arrays (host, numpy float64)."""
        kind, first, second = self.concentration_prior
        return WeightParameters(*(np.asarray(float(v)) for v in (
            self.dynamic, self.concentration is None, kind == "f", first, second,
            CONCENTRATION_STEP[kind], self.initial_concentration())))


class WeightParameters(NamedTuple):
    """A :class:`WeightPrior` as scalar arrays (a pytree: traced, not part of a program's
    key). Flags are 1.0 or 0.0.

    Attributes
    ----------
    dynamic : ``gamma_K = c / K`` (1) or ``c`` (0)
    sampled : ``c`` has its prior and is updated (1) or stays fixed (0)
    f_prior : ``c ~ F(first, second)`` (1) or ``Gamma(first, rate=second)`` (0)
    first, second : the concentration prior's parameters
    step : random-walk step on ``log c``
    initial : the starting (or fixed) ``c``
    """

    dynamic: Array
    sampled: Array
    f_prior: Array
    first: Array
    second: Array
    step: Array
    initial: Array


def as_parameters(weights: WeightPrior | WeightParameters) -> WeightParameters:
    """The arrays of a weight prior given either way."""
    return weights.parameters() if isinstance(weights, WeightPrior) else weights


def log_beta_negative_binomial(x: np.ndarray, r: float, a: float, b: float) -> np.ndarray:
    """log pmf of the beta-negative-binomial ``BNB(r, a, b)`` at integers ``x >= 0``:
    ``Gamma(r + x) / (x! Gamma(r)) B(a + r, b + x) / B(a, b)`` (host, numpy)."""
    from scipy.special import betaln
    from scipy.special import gammaln as host_gammaln

    x = np.asarray(x, np.float64)
    return (host_gammaln(r + x) - host_gammaln(x + 1.0) - host_gammaln(r)
            + betaln(a + r, b + x) - betaln(a, b))


def log_k_prior(prior: WeightPrior, n_components: int) -> np.ndarray:
    """``log p(K)`` for ``K = 1..T`` (T,), normalised over ``1..T``; with ``K`` fixed, 0 at
    ``K = T`` and ``-inf`` elsewhere (host, numpy)."""
    if not prior.random_k:
        out = np.full(n_components, -np.inf)
        out[-1] = 0.0
        return out
    log_p = log_beta_negative_binomial(np.arange(n_components), *prior.k_prior)
    return log_p - np.logaddexp.reduce(log_p)


def log_concentration_prior(weights: WeightPrior | WeightParameters, c: Array) -> Array:
    """Log prior density of the concentration ``c`` (up to a constant)."""
    p = as_parameters(weights)
    log_c = jnp.log(c)
    f_density = ((0.5 * p.first - 1.0) * log_c
                 - 0.5 * (p.first + p.second) * jnp.log1p(p.first * c / p.second))
    gamma_density = (p.first - 1.0) * log_c - p.second * c
    return jnp.where(p.f_prior > 0, f_density, gamma_density)


def gamma_of_k(weights: WeightPrior | WeightParameters, c: Array, n_components: int) -> Array:
    """``gamma_K`` for ``K = 1..T``: (T,)."""
    p = as_parameters(weights)
    k = jnp.arange(1, n_components + 1, dtype=jnp.asarray(c).dtype)
    return c * jnp.exp(-p.dynamic * jnp.log(k))


def log_partition_terms(prior: WeightPrior | WeightParameters, log_pk: Array, counts: Array,
                        c: Array, n_total: Array) -> Array:
    """The summands of ``p(C | c)`` (module docstring) for ``K = 1..T``: (T,), ``-inf`` for
    ``K < K+``. ``counts`` (T,) are the block sizes (zeros for empty slots, in any order)."""
    n_components = counts.shape[-1]
    dtype = counts.dtype
    k = jnp.arange(1, n_components + 1, dtype=dtype)
    gamma = gamma_of_k(prior, c, n_components)                                  # (T,)
    occupied = counts > 0
    n_occupied = jnp.sum(occupied)
    per_block = jnp.where(occupied[None, :], gammaln(counts[None, :] + gamma[:, None])
                          - gammaln(gamma[:, None]), 0.0)                       # (K, blocks)
    terms = (log_pk + gammaln(k + 1.0) - gammaln(jnp.maximum(k - n_occupied, 0.0) + 1.0)
             + gammaln(k * gamma) - gammaln(k * gamma + n_total) + jnp.sum(per_block, axis=1))
    return jnp.where(k >= n_occupied, terms, -jnp.inf)


def log_partition_prior(prior: WeightPrior | WeightParameters, log_pk: Array, counts: Array,
                        c: Array, n_total: Array) -> Array:
    """``log p(C | c)``, with ``K`` summed out: ()."""
    return jax.nn.logsumexp(log_partition_terms(prior, log_pk, counts, c, n_total))


def sample_n_components(prior: WeightPrior | WeightParameters, log_pk: Array, counts: Array,
                        c: Array, n_total: Array, uniform: Array) -> Array:
    """``K ~ p(K | C, c)`` (the telescoping step), from one uniform: () int32 in ``1..T``."""
    from bayesgmm.core.variates import inverse_cdf_choice

    terms = log_partition_terms(prior, log_pk, counts, c, n_total)
    return inverse_cdf_choice(terms, uniform) + 1


def update_concentration(prior: WeightPrior | WeightParameters, log_pk: Array, counts: Array,
                         c: Array, n_total: Array, normals: Array, uniforms: Array
                         ) -> tuple[Array, Array]:
    """Random-walk Metropolis-Hastings on ``log c`` targeting ``p(c) p(C | c)`` (``K``
    summed out), one step per entry of ``normals``/``uniforms`` (each (n_steps,)), of size
    ``step`` (:class:`WeightParameters`).

    Returns the new ``c`` and the number of accepted steps. With a fixed ``c`` it is returned
    unchanged.
    """
    prior = as_parameters(prior)
    step = prior.step

    def target(value):
        return (log_concentration_prior(prior, value)
                + log_partition_prior(prior, log_pk, counts, value, n_total))

    def one_step(i, carry):
        value, current, accepted = carry
        proposal = value * jnp.exp(step * normals[i])
        proposed = target(proposal)
        # The Jacobian of the log scale: log c' - log c.
        log_ratio = proposed - current + jnp.log(proposal) - jnp.log(value)
        accept = (jnp.log(uniforms[i]) < log_ratio) & (prior.sampled > 0)
        return (jnp.where(accept, proposal, value), jnp.where(accept, proposed, current),
                accepted + accept.astype(jnp.int32))

    value, _, accepted = jax.lax.fori_loop(0, normals.shape[0], one_step,
                                           (c, target(c), jnp.asarray(0, jnp.int32)))
    return value, accepted




def occupied_count_distribution(n_samples: Array, n_components: Array, gamma: Array,
                                n_slots: int) -> Array:
    """``P(K+ = k | K, gamma_K, N)`` for ``k = 0..n_slots``: (..., n_slots + 1), batched over
    the broadcast shape of ``n_components`` (``K``) and ``gamma`` (``gamma_K``).

    ``K+`` is the number of occupied components when ``N`` points are allocated under
    ``eta ~ Dirichlet(gamma_K, ..., gamma_K)`` (``K`` entries). Integrating ``eta`` out gives
    the Pólya urn: the ``n + 1``-th point opens a new component with probability
    ``(K - K+_n) gamma_K / (n + K gamma_K)`` and joins an occupied one otherwise, so the
    distribution of ``K+`` is one step of a bidiagonal recursion per point (all terms
    positive: no cancellation, unlike the inclusion-exclusion sum, which loses every digit for
    small ``gamma_K``). ``n_samples`` is traced: one program serves every ``N``.
    """
    n_components, gamma = jnp.broadcast_arrays(jnp.asarray(n_components, gamma.dtype), gamma)
    k = jnp.arange(n_slots + 1, dtype=gamma.dtype)
    start = jnp.zeros((*gamma.shape, n_slots + 1), gamma.dtype).at[..., 0].set(1.0)
    total = (n_components * gamma)[..., None]
    opening = jnp.maximum(n_components[..., None] - k, 0.0) * gamma[..., None]

    def add_point(n, p):
        n = n.astype(gamma.dtype)
        stay = p * (n + k * gamma[..., None]) / (n + total)
        moved = p[..., :-1] * opening[..., :-1] / (n + total)
        return stay.at[..., 1:].add(moved)

    return jax.lax.fori_loop(0, n_samples, add_point, start)

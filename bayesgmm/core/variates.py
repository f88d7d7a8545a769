"""Random variates for the samplers in plain JAX operations.

Random bits
    The samplers draw with a counter-based generator of their own: a 64-bit seed (a
    ``uint64`` scalar, so float64 mode is required) and the output function of SplitMix64
    (Steele, Lea & Flood 2014; the finaliser of Stafford's "Mix13"), ``mix(seed + (i + 1)
    gamma)`` for the ``i``-th number of a call. It is a handful of elementwise integer
    operations that XLA fuses into one kernel. ``jax.random``'s threefry is a ``while`` loop
    over its rounds in every call: on a Gibbs sweep over 272 rows its calls cost more run
    time than the rest of the sweep, and under ``vmap`` with a batch of keys each call
    became a further loop (measured here). SplitMix64 passes BigCrush; seeds of separate
    calls are themselves outputs of the mixer (:func:`split`, :func:`fold_in`), so streams
    do not overlap in practice.

Gamma variates
    ``jax.random.gamma`` costs most of all: its per-element rejection loop added ~1.4 s of XLA
    compile time and ~30 us per sweep to a 4-chain Gibbs sweep (measured here).
    :func:`log_gamma` is one vectorised Marsaglia-Tsang rejection loop over a whole array of
    shapes, so a sweep draws all its gamma variates (Dirichlet weights, Bartlett factors of
    Wishart draws) in one call. It returns logarithms: a Dirichlet weight of shape ``1e-3`` is
    ``U ** 1000`` times a Gamma(1.001) variate and underflows in linear scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtri

#: Rounds of the rejection loop before it gives up. Marsaglia-Tsang accepts at least 95% of
#: proposals for every shape >= 1, so the chance that one variate needs more than 40 rounds is
#: below 0.05 ** 40 = 1e-52: the cap only bounds the loop.
MAX_ROUNDS = 40

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SPLIT = np.uint64(0xD1B54A32D192ED03)


def _mix(z: Array) -> Array:
    """SplitMix64's output function on uint64 values."""
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def _on_host(*values) -> bool:
    """True when no value is a JAX array or tracer: seeds are then computed with numpy, as
    the same integer arithmetic, so that code outside compiled programs compiles nothing."""
    return not any(isinstance(v, jax.Array) for v in values)


def make_seed(value: int) -> np.ndarray:
    """A sampler seed (uint64 scalar, numpy) from a non-negative integer."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as intended
        return np.asarray(_mix(np.uint64(value % 2**64) + _SPLIT))


def split(seed: Array, n: int) -> Array:
    """``n`` independent seeds (n,) from one (numpy for a numpy seed)."""
    if _on_host(seed):
        with np.errstate(over="ignore"):
            counter = np.arange(1, n + 1, dtype=np.uint64)
            return _mix(_mix(np.asarray(seed, np.uint64) ^ _SPLIT) + counter * _GOLDEN)
    counter = jnp.arange(1, n + 1, dtype=jnp.uint64)
    return _mix(_mix(seed ^ _SPLIT) + counter * _GOLDEN)


def fold_in(seed: Array, value: Array) -> Array:
    """A seed for item ``value`` (an integer, possibly traced) of a loop (numpy for a numpy
    seed and a Python or numpy integer)."""
    if _on_host(seed, value):
        with np.errstate(over="ignore"):
            return np.asarray(_mix(np.asarray(seed, np.uint64)
                                   + (np.uint64(value) + np.uint64(1)) * _SPLIT))
    return _mix(seed + (jnp.asarray(value).astype(jnp.uint64) + np.uint64(1)) * _SPLIT)


def bits(seed: Array, shape: tuple) -> Array:
    """Random uint64 values of ``shape``: ``mix(seed + (i + 1) gamma)``."""
    size = int(np.prod(shape, dtype=np.int64))
    counter = jnp.arange(1, size + 1, dtype=jnp.uint64).reshape(shape)
    return _mix(seed + counter * _GOLDEN)


def uniform(seed: Array, shape: tuple, dtype=jnp.float64) -> Array:
    """Uniforms in the open interval (0, 1): 53 random bits, centred in their bin."""
    top = (bits(seed, shape) >> np.uint64(11)).astype(jnp.float64)
    return ((top + 0.5) * 2.0**-53).astype(dtype)


def normal(seed: Array, shape: tuple, dtype=jnp.float64) -> Array:
    """Standard normals by the inverse CDF of :func:`uniform` (one bit stream, no rejection)."""
    return ndtri(uniform(seed, shape, jnp.float64)).astype(dtype)


def log_gamma(seed: Array, shape: Array) -> Array:
    """``log G`` with ``G ~ Gamma(shape, 1)`` independently for every entry of ``shape`` (any
    array shape, entries > 0).

    Marsaglia & Tsang (2000): for ``a >= 1``, with ``d = a - 1/3`` and ``c = 1 / sqrt(9 d)``,
    propose ``v = (1 + c x)^3`` with ``x ~ N(0, 1)`` and accept when ``v > 0`` and
    ``log u < x^2 / 2 + d - d v + d log v`` (``u ~ U(0, 1)``); then ``G = d v``. Shapes below 1
    are boosted: ``G(a) = G(a + 1) U^(1/a)``, added in log space. Every round proposes for all
    entries and keeps the first acceptance of each, so the result is exact.
    """
    shape = jnp.asarray(shape)
    dtype = shape.dtype
    boost = shape < 1.0
    a = jnp.where(boost, shape + 1.0, shape)
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)

    def one_round(state):
        round_seed, done, log_value, rounds = state
        round_seed = fold_in(round_seed, rounds)
        pair = uniform(round_seed, (2, *shape.shape), dtype)
        x = ndtri(pair[0])
        u = pair[1]
        v = (1.0 + c * x) ** 3
        positive = v > 0
        log_v = jnp.log(jnp.where(positive, v, 1.0))
        accept = positive & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v) & ~done
        return (round_seed, done | accept, jnp.where(accept, jnp.log(d) + log_v, log_value),
                rounds + 1)

    def keep_going(state):
        _, done, _, rounds = state
        return ~jnp.all(done) & (rounds < MAX_ROUNDS)

    loop_seed, boost_seed = split(seed, 2)
    start = (loop_seed, jnp.zeros(shape.shape, bool), jnp.zeros(shape.shape, dtype),
             jnp.asarray(0, jnp.int32))
    _, _, log_value, _ = jax.lax.while_loop(keep_going, one_round, start)
    u = uniform(boost_seed, shape.shape, dtype)
    return log_value + jnp.where(boost, jnp.log(u) / shape, 0.0)


def log_dirichlet(log_gammas: Array, mask: Array) -> Array:
    """Log weights of a Dirichlet draw from log Gamma variates (..., T) of shapes ``a_k``:
    ``log(G_k / sum_j G_j)`` over the entries with ``mask`` True, ``-inf`` elsewhere."""
    masked = jnp.where(mask, log_gammas, -jnp.inf)
    return masked - jax.nn.logsumexp(masked, axis=-1, keepdims=True)


def bartlett_factor(log_chi2: Array, normals: Array) -> Array:
    """Lower-triangular Bartlett factor ``A`` (..., D, D) of a Wishart draw: ``W = F A A' F'``
    is ``Wishart(dof, F F')`` when ``A_ii^2 ~ chi2(dof - i)`` (i = 0..D-1) and the entries
    below the diagonal are standard normal.

    Parameters
    ----------
    log_chi2 : (..., D) logarithms of the diagonal's chi-square variates
    normals : (..., D, D) standard normals (only the strict lower triangle is read)
    """
    n_dims = log_chi2.shape[-1]
    below = jnp.tril(normals, k=-1)
    return below + jnp.exp(0.5 * log_chi2)[..., None] * jnp.eye(n_dims, dtype=normals.dtype)


def bartlett_shapes(dof: Array, n_dims: int) -> Array:
    """Gamma shapes (..., D) whose doubled variates are the ``chi2(dof - i)`` of
    :func:`bartlett_factor`: ``(dof - i) / 2`` for ``i = 0..D-1``."""
    return 0.5 * (jnp.asarray(dof)[..., None] - jnp.arange(n_dims, dtype=jnp.asarray(dof).dtype))


def inverse_cdf_choice(log_weights: Array, uniforms: Array) -> Array:
    """Index drawn with probability proportional to ``exp(log_weights)`` along the last axis,
    by inverting the cumulative sum at ``uniforms`` (...,) in [0, 1): (...,) int32.

    One uniform per draw (a Gumbel-max draw needs one per category).
    """
    top = jnp.max(log_weights, axis=-1, keepdims=True)
    cumulative = jnp.cumsum(jnp.exp(log_weights - top), axis=-1)
    chosen = jnp.sum(cumulative < uniforms[..., None] * cumulative[..., -1:], axis=-1)
    return jnp.minimum(chosen, log_weights.shape[-1] - 1).astype(jnp.int32)

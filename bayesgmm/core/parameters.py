"""The mixture's parameters as pytrees: the fitted parameters, the E-step's natural
parameters and the conjugate prior of MAP EM.

Shapes, with ``K`` components, ``D`` features and ``F`` second-moment features (see
:mod:`bayesgmm.core.moments`); the covariance formats of each type are listed in
:mod:`bayesgmm.core.covariance`.
"""

from __future__ import annotations

from typing import NamedTuple

from jax import Array


class MixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture (a pytree).

    Attributes
    ----------
    weights : (K,)
    means : (K, D)
    covariances : family-specific shape (see module docstring)
    precisions_cholesky : family-specific shape, ``precision = L @ L.T`` (elementwise square for
        diag/spherical)
    """

    weights: Array
    means: Array
    covariances: Array
    precisions_cholesky: Array


class NaturalParams(NamedTuple):
    """Per-component coefficients such that ``log(w_k N(x | mu_k, S_k)) = x @ linear_k +
    features(x) @ quadratic_k + constant_k``.

    Attributes
    ----------
    linear : (K, D), ``P_k mu_k``
    quadratic : (K, F), coefficients of the second-moment features (``-P/2`` with the
        off-diagonal terms doubled for the full form)
    constant : (K,), ``log w_k - D/2 log(2 pi) + 1/2 log|P_k| - 1/2 mu_k' P_k mu_k``
    """

    linear: Array
    quadratic: Array
    constant: Array


class ConjugatePrior(NamedTuple):
    """Conjugate prior for MAP EM (Fraley & Raftery 2007), in internal units (a pytree).

    ``mu_k | S_k ~ N(mean, S_k / shrinkage)`` and ``S_k ~ inverse-Wishart(dof, scale)`` (full,
    tied), or per-variance inverse-gamma ``(dof / 2, scale / 2)`` (diag, spherical). Mixing
    weights have no prior (as mclust).

    Attributes
    ----------
    mean : (D,)
    shrinkage : () ``kappa``, the prior's weight on the mean in pseudo-observations
    dof : () ``nu``
    scale : (D, D) full/tied, () diag/spherical (mclust's scalar)
    """

    mean: Array
    shrinkage: Array
    dof: Array
    scale: Array

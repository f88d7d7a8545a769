"""Covariance families by name: one object per covariance type, carrying all of that type's
formulas (:mod:`bayesgmm.core.covariance_types`), and :class:`Mixed`, any type per fit.

A family (:class:`~bayesgmm.core.covariance_family.CovarianceFamily`) knows, for its parameter
shapes,

* which second-moment features the E-step needs (:class:`~bayesgmm.core.moments.FullMoments`
  or :class:`~bayesgmm.core.moments.DiagMoments`),
* the M-step from additive sufficient statistics to a covariance (with ``reg_covar``), maximum
  likelihood or MAP under the conjugate prior of Fraley & Raftery (2007),
* the Cholesky factor of the precision and the natural parameters used by the E-step,
* the number of free parameters (for BIC/AIC).

Shapes, with ``K`` components and ``D`` features (the same as scikit-learn):

=========== ============== =====================
type        covariance     precisions_cholesky
=========== ============== =====================
full        (K, D, D)      (K, D, D), upper
tied        (D, D)         (D, D), upper
diag        (K, D)         (K, D)
spherical   (K,)           (K,)
=========== ============== =====================

Adding a covariance type means adding one class in :mod:`bayesgmm.core.covariance_types` and
registering it in :data:`FAMILIES`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.covariance_types import Diag, Full, MatrixCovariance, Spherical, Tied
from bayesgmm.core.moments import DiagMoments, FullMoments

FAMILIES: dict[str, CovarianceFamily] = {
    family.name: family for family in (Full(), Tied(), Diag(), Spherical())
}

#: The types :class:`Mixed` runs, in the order of its ``kind`` codes: every type, simplest
#: first (also :func:`~bayesgmm.estimators.selection.select_model`'s default sweep).
MIXED_KINDS: tuple[str, ...] = ("spherical", "diag", "tied", "full")


class Mixed(MatrixCovariance):
    """Any of the four types, chosen per fit by a traced code: a whole model-selection sweep
    (every type, K and restart) in one compiled program.

    Every fit carries full (K, D, D) matrices and the full second-moment features, so the
    E-step is the same code for every type; only the M-step differs, and it is each type's own
    formula (:meth:`covariance` evaluates the four families' M-steps on the full statistics
    and keeps the one of ``kind``). A diagonal or spherical fit thus runs on full features
    (45 columns instead of 17 or 10 at D = 8), a price worth one program instead of four: XLA
    compile time, not arithmetic, dominated a sweep on up to 1e5 rows. Its results are
    converted to each type's format by :meth:`CovarianceFamily.from_full`.

    The unbound ``Mixed()`` is the static argument of a compiled program; inside it,
    :meth:`bind` attaches one fit's traced ``kind`` (an index into :data:`MIXED_KINDS`).
    With a prior, ``prior.scale`` is (D, D) for every kind: ``scale * I`` for diag and
    spherical, whose scalar is read back from the diagonal.
    """

    name = "mixed"

    def __init__(self, kind: Array | None = None):
        self.kind = kind

    def bind(self, kind: Array) -> Mixed:
        return Mixed(kind)

    def _families(self) -> list[CovarianceFamily]:
        return [FAMILIES[name] for name in MIXED_KINDS]

    def _choose(self, options: list[Array]) -> Array:
        return jnp.stack(options)[self.kind]

    def covariance(self, counts, means, second, reg_covar, prior=None, offsets=None,
                   n_active=None):
        n_components, n_dims = means.shape
        matrix = FullMoments.to_matrix(second, n_dims)
        options = []
        for family in self._families():
            own_second = second if family.moments is FullMoments else jnp.diagonal(
                matrix, axis1=-2, axis2=-1)
            own_prior = prior
            if prior is not None and family.moments is DiagMoments:
                own_prior = prior._replace(scale=prior.scale[0, 0])
            cov = family.covariance(counts, means, own_second, reg_covar, own_prior, offsets,
                                    n_active)
            options.append(family.as_full(cov, n_components, n_dims))
        return self._choose(options)

    def as_full(self, cov, n_components, n_dims):
        return cov

    def min_count(self, n_dims):
        return self._choose([jnp.asarray(f.min_count(n_dims)) for f in self._families()])

    def _n_cov_parameters(self, n_components, n_dims):
        raise TypeError("a Mixed fit counts its parameters by its kind's family")


def get_family(covariance_type: str) -> CovarianceFamily:
    """The family object for a scikit-learn ``covariance_type`` string."""
    try:
        return FAMILIES[covariance_type]
    except KeyError:
        raise ValueError(
            f"covariance_type={covariance_type!r} is not supported; choose one of "
            f"{sorted(FAMILIES)}"
        ) from None

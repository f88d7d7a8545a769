"""Family formulas against independent references (scipy densities, scikit-learn M-step)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SklearnGMM

from bayesgmm.core.covariance import FAMILIES, get_family
from bayesgmm.core.moments import FullMoments
from bayesgmm.core.parameters import MixtureParams
from bayesgmm.core.stats import (
    centred_e_step,
    e_step,
    m_step,
    make_features,
    stats_from_responsibilities,
    weighted_log_prob,
)
from bayesgmm.engine.preprocessing import compute_context
from tests.helpers import blocked, random_params

COVARIANCE_TYPES = tuple(FAMILIES)


def _as_params(weights, means, covs, prec_chol):
    """scikit-learn's arrays as a MixtureParams pytree (call inside ``compute_context``)."""
    return MixtureParams(*map(jnp.asarray, (weights, means, covs, prec_chol)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_density_matches_scipy(covariance_type):
    family = get_family(covariance_type)
    x, _, weights, means, covs, prec_chol = random_params(family)
    with compute_context(np.float64):
        params = _as_params(weights, means, covs, prec_chol)
        ours = np.asarray(weighted_log_prob(make_features(jnp.asarray(x), family), params,
                                            family))
    full = {"full": lambda: covs, "tied": lambda: [covs] * 4,
            "diag": lambda: [np.diag(c) for c in covs],
            "spherical": lambda: [c * np.eye(3) for c in covs]}[covariance_type]()
    expected = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(x)
                         for w, m, c in zip(weights, means, full, strict=True)], axis=1)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_matches_sklearn(covariance_type):
    family = get_family(covariance_type)
    x, resp, weights, means, covs, prec_chol = random_params(family)
    with compute_context(np.float64):
        data = blocked(x, family)
        stats = stats_from_responsibilities(data, jnp.asarray(resp).reshape(2, 100, 4), 3)
        ours = m_step(stats, family, jnp.asarray(1e-3))
    np.testing.assert_allclose(ours.weights, weights, rtol=1e-12)
    np.testing.assert_allclose(ours.means, means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.covariances, covs, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.precisions_cholesky, prec_chol, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parameter_counts_match_sklearn(covariance_type):
    family = get_family(covariance_type)
    for k, d in [(1, 1), (3, 2), (5, 8), (2, 13)]:
        reference = SklearnGMM(k, covariance_type=covariance_type)
        reference.means_ = np.zeros((k, d))
        assert family.n_parameters(k, d) == reference._n_parameters()


def test_vech_features_round_trip():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4))
    second = np.asarray(FullMoments.features(jnp.asarray(x))).sum(axis=0)
    np.testing.assert_allclose(np.asarray(FullMoments.to_matrix(jnp.asarray(second), 4)),
                               x.T @ x, rtol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_centred_statistics_equal_raw_in_float64(covariance_type):
    """Centring the second moments is the same M-step, computed differently."""
    family = get_family(covariance_type)
    x, _, weights, means, covs, prec_chol = random_params(family)
    with compute_context(np.float64):
        params = _as_params(weights, means, covs, prec_chol)
        data = blocked(x, family)
        raw = m_step(e_step(data, params, family), family, 1e-6)
        centre = raw.means
        refined = m_step(centred_e_step(data, params, centre, family), family, 1e-6, centre)
    for a, b in zip(raw, refined, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_centred_statistics_rescue_float32_thin_distant_cluster():
    """A thin cluster far from the origin: raw moments lose its variance in float32."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20_000, 2)) * [3.0, 3.0],
                        [30.0, 30.0] + rng.normal(size=(20_000, 2)) * [1e-2, 1.0]])
    family = get_family("full")
    resp = np.zeros((40_000, 2))
    resp[:20_000, 0] = resp[20_000:, 1] = 1.0
    truth = np.cov(x[20_000:].T, bias=True)[0, 0]

    def fitted_variance(dtype, centred):
        with compute_context(dtype):
            data = blocked(x.astype(dtype), family, n_blocks=4)
            stats = stats_from_responsibilities(
                data, jnp.asarray(resp, dtype).reshape(4, 10_000, 2), 2)
            params = m_step(stats, family, jnp.asarray(0.0, dtype))
            if centred:
                # Responsibilities of these parameters are ~hard; centre on their means.
                stats = centred_e_step(data, params, params.means, family)
                params = m_step(stats, family, jnp.asarray(0.0, dtype), params.means)
            return float(params.covariances[1, 0, 0])

    raw_error = abs(fitted_variance(np.float32, False) / truth - 1)
    centred_error = abs(fitted_variance(np.float32, True) / truth - 1)
    assert centred_error < 1e-3
    assert raw_error > 10 * centred_error


def test_jit_cache_hit_for_same_shape():
    """Functions in core are pure; the family object is hashable static data."""
    family = get_family("full")
    assert hash(family) == hash(get_family("full"))
    assert family == FAMILIES["full"] and family != FAMILIES["tied"]
    f = jax.jit(lambda x: make_features(x, family))
    f(jnp.ones((4, 2)))
    f(jnp.zeros((4, 2)))
    assert f._cache_size() == 1


def test_normaliser_flushes_subnormal_responsibilities():
    """exp(-95) is subnormal in float32; subnormals slow CPUs ~100x, so they become exact 0."""
    from bayesgmm.core.stats import normalise_log_prob

    log_prob = jnp.asarray([[0.0, -95.0, -50.0]], jnp.float32)
    resp, log_norm = normalise_log_prob(log_prob)
    resp = np.asarray(resp)
    assert resp[0, 1] == 0.0
    assert resp[0, 2] == pytest.approx(np.exp(-50.0), rel=1e-5)
    assert float(log_norm[0]) == pytest.approx(np.log1p(np.exp(-50.0)), abs=1e-7)


@pytest.mark.parametrize("n_dims", [1, 2, 8, 30])
def test_plain_cholesky_matches_lapack_and_fails_like_it(n_dims):
    """The FFI-free Cholesky of the EM programs (see bayesgmm/core/linalg.py for the jaxlib
    deadlock it avoids) equals numpy's LAPACK factor, and is non-finite where the matrix is
    not positive definite."""
    from bayesgmm.core.linalg import cholesky

    rng = np.random.default_rng(n_dims)
    a = rng.normal(size=(6, n_dims, n_dims))
    spd = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(n_dims)
    indefinite = spd - 2.0 * np.max(np.linalg.eigvalsh(spd)) * np.eye(n_dims)
    with compute_context(np.float64):
        factor = np.asarray(jax.jit(cholesky)(jnp.asarray(spd)))
        failed = np.asarray(cholesky(jnp.asarray(indefinite)))
    reference = np.linalg.cholesky(spd)
    np.testing.assert_allclose(factor, reference, atol=1e-12 * np.max(np.abs(reference)))
    assert not np.isfinite(failed).all(axis=(-2, -1)).any()


def test_em_factorisations_make_no_lapack_call():
    """The compiled M-step factorisation lowers to plain operations: no LAPACK ``potrf``
    custom call, whose batched form deadlocks jaxlib 0.10.2 on a 2-thread pool."""
    from bayesgmm.core.covariance_types import _safe_cholesky

    with compute_context(np.float64):
        covariances = jnp.tile(jnp.eye(3), (4, 1, 1))
        text = jax.jit(jax.vmap(lambda c: _safe_cholesky(c, 1e-6))).lower(
            jnp.stack([covariances] * 5)).as_text()
    assert "potrf" not in text and "custom_call" not in text

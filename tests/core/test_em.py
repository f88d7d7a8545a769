"""The compiled EM loop: monotonicity, restarts, stopping, warm start, recompilation."""

import dataclasses
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixture
from bayesgmm.base.config import seed_from
from bayesgmm.core.em import fit_batch, fit_program
from tests.helpers import make_mixture, run_core_batch

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases(covariance_type, faithful):
    """EM's defining property, from one-point seeds far from the optimum."""
    model = GaussianMixture(3, covariance_type=covariance_type, init_params="k-means++",
                            tol=1e-7, max_iter=2000, random_state=3).fit(faithful)
    bounds = np.asarray(model.lower_bounds_)
    assert len(bounds) == model.n_iter_ > 5
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))


def test_recovers_known_mixture():
    x, labels, means, _ = make_mixture(n=1500, seed=4)
    model = GaussianMixture(3, n_init=3, random_state=0).fit(x)
    assert adjusted_rand_score(labels, model.predict(x)) > 0.99
    order = [np.argmin(np.linalg.norm(model.means_ - m, axis=1)) for m in means]
    np.testing.assert_allclose(model.means_[order], means, atol=0.15)
    np.testing.assert_allclose(model.weights_[order], [0.5, 0.3, 0.2], atol=0.04)


def test_best_restart_wins(faithful):
    """The estimator keeps the restart with the highest lower bound of the vmapped batch."""
    x = faithful.to_numpy()
    model = GaussianMixture(3, n_init=6, init_params="random_from_data", random_state=11,
                            max_iter=500).fit(x)
    result, scaling = run_core_batch(x, 6, 3, max_iter=500, seed=seed_from(11))
    bounds = np.asarray(result.state.lower_bound) - scaling.log_det(2)
    assert len(np.unique(np.round(bounds, 6))) > 1, "restarts should differ"
    usable = ~np.asarray(result.degenerate).any(axis=1)
    assert model.lower_bound_ == pytest.approx(bounds[usable].max(), rel=1e-10)


def test_stopping_rule_and_convergence_warning(faithful):
    with pytest.warns(ConvergenceWarning):
        model = GaussianMixture(2, tol=0.0, max_iter=7, random_state=0).fit(faithful)
    assert model.n_iter_ == 7 and not model.converged_
    loose = GaussianMixture(2, tol=1.0, random_state=0).fit(faithful)
    assert loose.converged_ and loose.n_iter_ == 2  # the first change is from -inf


def test_max_iter_zero_returns_initialisation(faithful):
    x = faithful.to_numpy()
    means = np.array([[2.0, 55.0], [4.5, 80.0]])
    model = GaussianMixture(2, max_iter=0, means_init=means).fit(x)
    assert model.n_iter_ == 0
    np.testing.assert_allclose(model.means_, means)


def test_warm_start_continues(faithful):
    full = GaussianMixture(2, tol=1e-8, max_iter=500, random_state=0).fit(faithful)
    warm = GaussianMixture(2, max_iter=1, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bounds = [warm.fit(faithful).lower_bound_ for _ in range(20)]  # full fit: 7 iterations
    assert np.all(np.diff(bounds) >= -1e-10)
    np.testing.assert_allclose(np.sort(warm.means_, axis=0), np.sort(full.means_, axis=0),
                               rtol=1e-4)


def test_same_shapes_do_not_recompile(faithful):
    x = faithful.to_numpy()
    GaussianMixture(2, random_state=0).fit(x)
    before = fit_program._cache_size()
    GaussianMixture(2, random_state=1).fit(x[::-1] + 1.0)
    GaussianMixture(2, random_state=2, tol=1e-4, reg_covar=1e-5).fit(x[:265])  # same bucket
    # max_iter is traced: 1 to 128 iterations share the program of the default 100
    short = GaussianMixture(2, random_state=0, max_iter=3).fit(x)
    # the starts are a program of their own: another init shares the EM program
    GaussianMixture(2, random_state=0, init_params="random_from_data").fit(x)
    assert fit_program._cache_size() == before
    assert short.n_iter_ <= 3 and len(short.lower_bounds_) == short.n_iter_
    longer = GaussianMixture(2, random_state=0, max_iter=129).fit(x)  # capacity 256
    assert fit_program._cache_size() == before + 1 and longer.converged_


def test_verbose_reports_every_restart(faithful, capsys):
    GaussianMixture(2, n_init=2, verbose=2, verbose_interval=1, random_state=0).fit(faithful)
    out = capsys.readouterr().out
    assert out.count("Initialization") == 2 and "best" in out and "Iteration 1" in out


def test_large_batches_run_as_equal_runs_of_one_program(monkeypatch):
    """XLA's CPU runtime deadlocked on ~150 full-covariance fits in one program (see
    ``MAX_FITS_PER_RUN``): of 150 restarts, the first runs alone (the program of
    ``n_init=1``, which it then reproduces bit for bit) and the other 149 as three runs of 50
    fits of one program (the last padded), and their results come back as one batch of
    150."""
    import bayesgmm.engine.training as training

    sizes, shapes = [], []
    compiled = training.fit_batch

    def spy(config, fits, shared):
        sizes.append(len(fits.active))
        shapes.append(fits.draws.shape)
        return compiled(config, fits, shared)

    monkeypatch.setattr(training, "fit_batch", spy)
    x = make_mixture(n=200, seed=4)[0]
    model = GaussianMixture(3, n_init=150, random_state=0).fit(x)
    assert sizes == [1, 50, 50, 50]
    assert len(set(shapes[1:])) == 1  # the padded last run has the others' shape
    assert model.converged_


def test_one_screening_program_fits_the_sample_then_all_rows():
    """``fit_batch`` with ``final`` (the one program of a screened sweep) against the plain
    program: ``final=False`` fits from the draws on the first ``sample_blocks`` blocks exactly
    as the plain program fits those blocks alone, and ``final=True`` continues given
    parameters on all blocks as the plain program continues a complete override (to rounding:
    these fits need no centred last M-step). The rows after the sample come from a shifted
    mixture, so a leak of them would show."""
    import jax
    import jax.numpy as jnp

    from bayesgmm.core.covariance import get_family
    from bayesgmm.core.em import EMConfig, FitInputs, InitOverride, SharedInputs
    from bayesgmm.core.init import init_draws
    from bayesgmm.engine.preprocessing import compute_context, to_blocks

    x = make_mixture(n=1200, seed=5)[0]
    x[512:] += [4.0, -3.0, 2.0]
    family, n_fits, k, d = get_family("diag"), 4, 3, x.shape[1]
    with compute_context(np.float64):
        data = to_blocks((x - x.mean(0)) / x.std(0), np.float64, family, block_rows=256)
        assert data.features.shape[:2] == (5, 256)
        common = (jnp.asarray(1e-6), jnp.asarray(1e-6), jnp.ones(d))
        draws = init_draws(0, n_fits, "random_from_data", k)
        active = np.ones((n_fits, k), bool)
        unused = InitOverride(np.zeros((n_fits, k)), np.zeros((n_fits, k, d)),
                              np.zeros((n_fits, k, d)), np.zeros((n_fits, k, d)))
        config = EMConfig(family, "random_from_data", max_iter=300)
        screened = dataclasses.replace(config, sample_blocks=2)
        sample = jax.device_get(fit_batch(
            screened, FitInputs(draws, active, unused, final=jnp.asarray(False)),
            SharedInputs(data, *common)))
        alone = jax.device_get(fit_batch(config, FitInputs(draws, active),
                                         SharedInputs(data.leading(2), *common)))
        given = InitOverride(*sample.state.params)
        rest = jax.device_get(fit_batch(
            screened, FitInputs(draws, active, given, final=jnp.asarray(True)),
            SharedInputs(data, *common)))
        plain = jax.device_get(fit_batch(dataclasses.replace(config, summarise=True),
                                         FitInputs(draws, active, given),
                                         SharedInputs(data, *common)))
    np.testing.assert_array_equal(sample.state.n_iter, alone.state.n_iter)
    np.testing.assert_allclose(sample.state.lower_bound, alone.state.lower_bound, rtol=1e-12)
    # the sample's last M-step is not refined (centred): equal to rounding in float64
    for ours, theirs in zip(sample.state.params, alone.state.params, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(rest.state.n_iter, plain.state.n_iter)
    np.testing.assert_array_equal(rest.degenerate, plain.degenerate)
    # everything but the last statistics (plain's are centred on the means, ours about 0)
    for ours, theirs in zip(jax.tree_util.tree_leaves((
            rest.state._replace(stats=None), rest.loglik, rest.map_log_resp)),
            jax.tree_util.tree_leaves((plain.state._replace(stats=None), plain.loglik,
                                       plain.map_log_resp)), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert rest.state.converged.all() and (rest.loglik < 0).all()
    assert np.all(rest.state.lower_bound < sample.state.lower_bound - 0.1)  # all rows


def test_raw_moments_lose_digits_only_on_thin_components_far_from_the_origin():
    """The rule that decides whether a screened sweep's final batch redoes the last M-step
    from centred statistics: never needed for ordinary components in float64, always in
    float32, needed for a thin component far from the origin, and inactive components do not
    count."""
    import jax.numpy as jnp

    from bayesgmm.core.covariance import get_family
    from bayesgmm.core.em_steps import raw_moments_lose_digits
    from bayesgmm.core.parameters import MixtureParams
    from bayesgmm.engine.preprocessing import compute_context

    full, active = get_family("full"), jnp.array([True, True, False])

    def lose(means, variances, dtype):
        cov = np.stack([np.eye(2) * v for v in variances])
        params = MixtureParams(jnp.ones(3, dtype) / 3, jnp.asarray(means, dtype),
                               jnp.asarray(cov, dtype), jnp.zeros((3, 2, 2), dtype))
        return bool(raw_moments_lose_digits(params, full, active))

    ordinary = ([[0.0, 0.0], [2.0, -1.0], [0.0, 0.0]], [0.5, 0.01, 1.0])
    # |mu|^2 + tr S over the smallest variance: 3.2e4 passes, 8.0e4 fails (limit ~4.5e4)
    near, far = ([[0.0, 0.0], [4.0, 0.0], [0.0, 0.0]], [0.5, 5e-4, 1.0]), (
        [[0.0, 0.0], [4.0, 0.0], [0.0, 0.0]], [0.5, 2e-4, 1.0])
    thin_inactive = ([[0.0, 0.0], [2.0, -1.0], [50.0, 0.0]], [0.5, 0.01, 1e-9])
    with compute_context(np.float64):
        assert not lose(*ordinary, np.float64)
        assert not lose(*near, np.float64)
        assert lose(*far, np.float64)
        assert not lose(*thin_inactive, np.float64)
    assert lose(*ordinary, np.float32)


def test_screened_final_batch_refines_a_thin_far_component():
    """With a thin component far from the origin the final batch does redo the last M-step
    from centred statistics: it then equals the plain program (which always does) to 1e-12,
    where the raw-moment M-step alone is off by about eps x 1e8."""
    import jax
    import jax.numpy as jnp

    from bayesgmm.core.covariance import get_family
    from bayesgmm.core.em import EMConfig, FitInputs, InitOverride, SharedInputs
    from bayesgmm.engine.preprocessing import compute_context, to_blocks

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(1000, 2)), 3.0 + 1e-4 * rng.normal(size=(200, 2))])
    family, d = get_family("full"), 2
    means = np.array([[[-0.3, 0.2], [0.3, -0.2], [3.0, 3.0]]])
    cov = np.array([[np.eye(2) * 0.5, np.eye(2) * 0.5, np.eye(2) * 1e-8]])
    given = InitOverride(np.array([[0.42, 0.41, 0.17]]), means, cov,
                         np.linalg.cholesky(np.linalg.inv(cov)).swapaxes(-1, -2))
    with compute_context(np.float64):
        data = to_blocks(x, np.float64, family, block_rows=256)
        common = (jnp.asarray(1e-10), jnp.asarray(1e-6), jnp.ones(d))
        draws, active = np.zeros((1, 3)), np.ones((1, 3), bool)
        rest = jax.device_get(fit_batch(
            EMConfig(family, "random_from_data", 300, sample_blocks=2),
            FitInputs(draws, active, given, final=jnp.asarray(True)),
            SharedInputs(data, *common)))
        plain = jax.device_get(fit_batch(EMConfig(family, "random_from_data", 300,
                                                  summarise=True),
                                         FitInputs(draws, active, given),
                                         SharedInputs(data, *common)))
    thin = np.argmin(np.linalg.eigvalsh(plain.state.params.covariances[0]).min(axis=1))
    assert np.linalg.eigvalsh(plain.state.params.covariances[0, thin]).min() < 1e-7
    for ours, theirs in zip(jax.tree_util.tree_leaves(rest), jax.tree_util.tree_leaves(plain),
                            strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)

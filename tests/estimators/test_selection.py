"""Model selection: the table, criteria against scikit-learn, recovery, the degenerate guard."""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGMM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bayesgmm import AutoGaussianMixture, GaussianMixture, select_model
from bayesgmm.estimators.selection import TABLE_COLUMNS


@pytest.fixture(scope="module")
def faithful_selection(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return select_model(faithful, n_init=5, random_state=0)


def test_table_has_one_row_per_pair_and_one_selection(faithful_selection):
    table = faithful_selection.table
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 4 * 9
    assert table.groupby(["covariance_type", "n_components"]).size().max() == 1
    assert table["selected"].sum() == 1
    assert np.all(np.diff(table["bic"]) >= 0)  # sorted by the criterion
    best = table[table["selected"]].iloc[0]
    assert not best["degenerate"]
    assert best["bic"] == table.loc[~table["degenerate"], "bic"].min()
    model = faithful_selection.best_
    assert (model.covariance_type, model.n_components) == (best["covariance_type"],
                                                           best["n_components"])
    assert not model.degenerate_.any()
    assert list(model.feature_names_in_) == ["eruptions", "waiting"]


def test_every_row_matches_sklearn_at_its_parameters(faithful_selection, faithful):
    """BIC and AIC equal scikit-learn's bic()/aic() at the row's fitted parameters; ICL - BIC
    equals -2 sum log max predict_proba computed by scikit-learn."""
    x = faithful.to_numpy()
    for row in faithful_selection.table.itertuples():
        ours = faithful_selection.model(row.covariance_type, row.n_components)
        reference = SklearnGMM(row.n_components, covariance_type=row.covariance_type)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(reference, name, getattr(ours, name))
        assert row.n_parameters == reference._n_parameters()
        assert row.bic == pytest.approx(reference.bic(x), rel=1e-8), row
        assert row.aic == pytest.approx(reference.aic(x), rel=1e-8), row
        entropy = -2 * np.log(reference.predict_proba(x).max(axis=1)).sum()
        assert row.icl - row.bic == pytest.approx(entropy, rel=1e-6, abs=1e-6), row


def test_degenerate_fits_never_win_where_sklearn_loop_picks_one(faithful):
    """On Old Faithful (whole-minute waiting times), a plain scikit-learn BIC loop over the
    default grid with random_from_data starts selects a fit with a collapsed component (its
    smallest covariance eigenvalue is reg_covar); the sweep, same grid and starts, does not."""
    x = faithful.to_numpy()
    best_bic, pick = np.inf, None
    for covariance_type in ("spherical", "diag", "tied", "full"):
        for k in range(1, 10):
            model = SklearnGMM(k, covariance_type=covariance_type, n_init=5,
                               init_params="random_from_data", random_state=0).fit(x)
            if model.bic(x) < best_bic:
                best_bic, pick = model.bic(x), model
    picked = GaussianMixture(pick.n_components, covariance_type=pick.covariance_type)
    picked.covariances_, picked.means_ = pick.covariances_, pick.means_
    assert np.linalg.eigvalsh(picked.full_covariances()).min() < 2e-6  # a collapse

    result = select_model(x, n_init=5, init_params="random_from_data", random_state=0)
    table = result.table
    # Restarts collapse in the sweep too, but a healthy restart always represents its pair:
    assert table["n_degenerate_inits"].sum() > 0
    some_collapsed = table[table["n_degenerate_inits"].between(1, 4)]
    assert len(some_collapsed) and not some_collapsed["degenerate"].any()
    for row in some_collapsed.itertuples():
        assert not result.model(row.covariance_type, row.n_components).degenerate_.any()
    chosen = result.best_
    assert not chosen.degenerate_.any()
    assert np.linalg.eigvalsh(chosen.full_covariances()).min() > 100 * chosen.reg_covar


def test_excluded_models_are_counted_in_a_warning():
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0], [7.0, 7.0]]), 25, axis=0)
    x = x + np.random.default_rng(0).normal(size=x.shape) * [0.5, 0.0]  # y repeats exactly
    with pytest.warns(UserWarning, match=r"\d+ of 12 models were degenerate"):
        result = select_model(x, n_components=range(1, 7), covariance_types=("full", "diag"),
                              n_init=3, random_state=0)
    assert result.table["degenerate"].any()
    assert not result.table.loc[result.table["selected"], "degenerate"].item()


def _true_mixture(covariance_type, seed, n=500):
    """Three well-separated 2-D clusters whose covariance structure is ``covariance_type``."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    rotation = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    covs = {
        "spherical": [s * np.eye(2) for s in (1.0, 0.5, 2.0)],
        "diag": [np.diag(v) for v in ([2.0, 0.3], [0.3, 2.0], [1.5, 0.6])],
        "tied": [rotation @ np.diag([2.5, 0.3]) @ rotation.T] * 3,
        "full": [r @ np.diag([2.5, 0.3]) @ r.T for r in
                 (rotation, rotation.T, np.array([[0.0, -1.0], [1.0, 0.0]]))],
    }[covariance_type]
    labels = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
    return np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])


@pytest.mark.parametrize("covariance_type", ["spherical", "diag", "tied", "full"])
def test_bic_recovers_the_true_model(covariance_type):
    hits = 0
    for seed in range(7):
        x = _true_mixture(covariance_type, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            best = select_model(x, n_components=range(1, 5), n_init=3,
                                random_state=seed).best_
        hits += (best.covariance_type, best.n_components) == (covariance_type, 3)
    assert hits >= 6


@pytest.mark.parametrize("dataset", ["iris", "wine"])
def test_bundled_datasets_select_a_healthy_model(dataset):
    from tests.helpers import DATASETS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = select_model(DATASETS[dataset](), n_components=range(1, 6),
                              covariance_types=("diag", "full"), n_init=2, random_state=0)
    # (diag and full: the types whose components can collapse onto a few points)
    assert not result.best_.degenerate_.any()
    assert not result.table.loc[result.table["selected"], "degenerate"].item()


def test_bad_grid_arguments(faithful):
    with pytest.raises(ValueError, match="n_components"):
        select_model(faithful, n_components=[0, 2])
    with pytest.raises(ValueError, match="covariance_type"):
        select_model(faithful, covariance_types=("full", "VVV"))
    with pytest.raises(ValueError, match="criterion"):
        select_model(faithful, criterion="dic")
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        select_model(faithful.iloc[:5], n_components=range(1, 8))


def test_other_criteria_select_by_their_column(faithful):
    for criterion in ("aic", "icl"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            # One small program (test_io's grid). Not the module fixture: xdist would then
            # compute the default grid on both workers.
            result = select_model(faithful, range(1, 3), ("diag", "tied"), n_init=1,
                                  criterion=criterion, random_state=0)
        table = result.table
        assert table.loc[table["selected"], criterion].item() == table.loc[
            ~table["degenerate"], criterion].min()
        assert np.all(table["icl"] >= table["bic"] - 1e-9)  # the entropy term is >= 0


def test_auto_estimator_in_a_pipeline(faithful):
    # one small program (as test_io's): reusing the default grid's failed when the module
    # fixture was computed on the other worker at the same time
    auto = AutoGaussianMixture(range(1, 3), covariance_types=("diag", "tied"), n_init=1,
                               random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pipe = make_pipeline(StandardScaler(), auto).fit(faithful)
    fitted = pipe[-1]
    assert fitted.n_components_ == fitted.best_estimator_.n_components
    assert fitted.means_.shape == (fitted.n_components_, 2)
    labels = pipe.predict(faithful)
    assert labels.max() == fitted.n_components_ - 1
    np.testing.assert_allclose(pipe.predict_proba(faithful).sum(1), 1.0)
    assert pipe.score(faithful) == pytest.approx(
        fitted.best_estimator_.score(StandardScaler().fit_transform(faithful)))


def test_plot_draws_one_line_per_type(faithful_selection, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = faithful_selection.plot()
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"diag (VVI)", "tied (EEE)", "full (VVV)"} <= set(labels)
    # Old Faithful's spherical models are far worse: left off the scale, and said so.
    assert "spherical (VII): off scale, best 2,900" in labels
    ax.figure.savefig(tmp_path / "bic.png")
    assert (tmp_path / "bic.png").stat().st_size > 10_000


def test_old_faithful_matches_mclusts_published_bic(faithful_selection):
    """mclust's "A quick tour of mclust" (Scrucca et al.): on faithful, Mclust() picks EEE
    (tied) with 3 components, BIC -2314.386, then VVV,2 -2322.192; EEE,2 is -2325.220.
    (mclust's sign; ours is the negative.)"""
    result = faithful_selection  # the default grid, K = 1..9
    best = result.best_
    assert (best.covariance_type, best.n_components) == ("tied", 3)
    table = result.table.set_index(["covariance_type", "n_components"])["bic"]
    # The selected model is finished to the optimum (FINISH_TOL): at least as good as mclust's
    # answer, which stops at mclust's own tolerance, and close to it.
    assert 2314.386 - 0.15 < table[("tied", 3)] <= 2314.386
    assert table[("full", 2)] == pytest.approx(2322.192, abs=0.01)
    assert table[("tied", 2)] == pytest.approx(2325.220, abs=0.01)


def test_the_selected_model_is_finished_to_the_optimum(faithful, faithful_selection):
    """The selected row's criteria are those of the finished model (scored again here by the
    estimator's own methods), and EM from it with a much tighter tolerance gains nothing."""
    best = faithful_selection.best_
    row = faithful_selection.table.iloc[0]
    assert row.selected and row.converged and best.converged_
    assert row.bic == pytest.approx(best.bic(faithful), rel=1e-12)
    assert row.aic == pytest.approx(best.aic(faithful), rel=1e-12)
    memberships = best.predict_proba(faithful)
    assert row.icl == pytest.approx(best.bic(faithful)
                                    - 2 * np.log(memberships.max(axis=1)).sum(), rel=1e-12)
    further = GaussianMixture(best.n_components, covariance_type=best.covariance_type,
                              weights_init=best.weights_, means_init=best.means_,
                              precisions_init=best.precisions_, tol=1e-12,
                              max_iter=5000).fit(faithful)
    assert further.bic(faithful) == pytest.approx(best.bic(faithful), abs=1e-4)
    assert faithful_selection.model(best.covariance_type, best.n_components) is best


def test_screened_sweep_matches_the_sweep_of_every_restart_on_all_rows(monkeypatch):
    """Screening (emEM on a sample) against fitting every restart on all rows. The screened
    sweep is one compiled program run twice: every restart of every pair on the sample
    (3,000 rows rounded up to one block of 3,072), then one fit per pair on all rows; both
    pick the true model, and its log-likelihood agrees to 1e-4 per row."""
    import jax

    import bayesgmm.engine.training as training

    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [6.0, 1.0], [1.0, 7.0]])
    x = means[rng.choice(3, 12_000)] + rng.normal(size=(12_000, 2)) * [1.0, 0.6]
    calls = []
    compiled = training.fit_batch

    def spy(config, fits, shared):
        final = fits.final
        shapes = [np.shape(a) for a in jax.tree_util.tree_leaves((fits, shared))]
        calls.append((None if final is None else bool(final), len(fits.active),
                      config.sample_blocks, shared.data.features.shape[:2], shapes))
        return compiled(config, fits, shared)

    monkeypatch.setattr(training, "fit_batch", spy)
    grid = dict(n_components=range(1, 5), covariance_types=("diag", "full"), n_init=3,
                random_state=0)
    screened = select_model(x, screen_rows=3000, **grid)
    # 8 pairs x 3 restarts on the sample in runs of 8, then the 8 pairs on all rows; then the
    # selected model alone is finished on all rows (FINISH_TOL)
    assert [c[:4] for c in calls] == ([(False, 8, 1, (4, 3072))] * 3
                                      + [(True, 8, 1, (4, 3072)), (None, 1, None, (1, 12288))])
    assert all(c[4] == calls[0][4] for c in calls[:4]), "both batches must share one program"
    calls.clear()
    exact = select_model(x, screen_rows=None, **grid)
    assert [c[:3] for c in calls] == [(None, 24, None), (None, 1, None)]
    for result in (screened, exact):
        assert (result.best_.covariance_type, result.best_.n_components) == ("diag", 3)
    pick = [t[t["selected"]].iloc[0] for t in (screened.table, exact.table)]
    assert pick[0].log_likelihood == pytest.approx(pick[1].log_likelihood, abs=1e-4 * len(x))
    assert screened.table["converged"].all()


@pytest.mark.parametrize("finish_tol", [0, -1e-8, "tight"])
def test_bad_finish_tol_is_refused(faithful, finish_tol):
    with pytest.raises(ValueError, match="finish_tol="):
        select_model(faithful.to_numpy(), n_components=[1, 2], finish_tol=finish_tol)


@pytest.mark.parametrize("screen_rows", [0, -5, 2.5, "all", True])
def test_bad_screen_rows_are_refused(faithful, screen_rows):
    with pytest.raises(ValueError, match="screen_rows="):
        select_model(faithful.to_numpy(), n_components=[1, 2], screen_rows=screen_rows)


def test_screening_plan_rounds_the_sample_up_to_whole_blocks_and_is_off_with_missing_values():
    """The sample fills whole blocks (at most 1/16 more rows than asked), screening needs more
    than twice the sample's rows, and data with missing values are never screened (their
    blocks group rows by pattern)."""
    from bayesgmm.engine.sweep import screening_plan
    from bayesgmm.engine.training import TrainingData

    x = np.random.default_rng(0).normal(size=(25_000, 8))

    def data(values, missing="error"):
        return TrainingData.prepare(values, GaussianMixture(2, missing=missing), 2, 1e-6,
                                    missing)

    plan = screening_plan("auto", data(x), np.float64)
    assert 10_000 <= plan.sample_rows <= 10_000 * 17 / 16
    assert plan.sample_rows == plan.sample_blocks * plan.block_rows
    assert screening_plan(12_000, data(x), np.float64).sample_rows == 12_288  # < 25,000 / 2
    assert screening_plan(13_000, data(x), np.float64) is None  # 13,312 > 25,000 / 2
    assert screening_plan(None, data(x), np.float64) is None
    holes = x.copy()
    holes[::7, 3] = np.nan
    assert screening_plan("auto", data(holes, "marginalize"), np.float64) is None

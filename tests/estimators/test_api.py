"""scikit-learn conventions: check_estimator, DataFrames, pipelines, random_state."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import GaussianMixture
from tests.helpers import NOT_INHERITED

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", NOT_INHERITED, UserWarning)
    ESTIMATOR_CHECKS = parametrize_with_checks([
        GaussianMixture(), GaussianMixture(covariance_type="diag", dtype="float32")])


@ESTIMATOR_CHECKS
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_dataframe_in_numpy_out(faithful):
    model = GaussianMixture(2, random_state=0).fit(faithful)
    assert list(model.feature_names_in_) == ["eruptions", "waiting"]
    assert model.n_features_in_ == 2
    proba = model.predict_proba(faithful)
    assert isinstance(proba, np.ndarray) and proba.shape == (272, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(model.predict(faithful), proba.argmax(1))
    assert model.score(faithful) == pytest.approx(model.score_samples(faithful).mean())
    renamed = faithful.rename(columns={"waiting": "wait"})
    with pytest.raises(ValueError, match="feature names"):
        model.predict(renamed)


def test_fit_predict_matches_predict(faithful):
    model = GaussianMixture(3, n_init=2, random_state=0)
    labels = model.fit_predict(faithful)
    np.testing.assert_array_equal(labels, model.predict(faithful))


def test_random_state_kinds(faithful):
    x = faithful.to_numpy()
    a = GaussianMixture(3, init_params="random_from_data", random_state=7).fit(x)
    b = GaussianMixture(3, init_params="random_from_data", random_state=7).fit(x)
    np.testing.assert_array_equal(a.means_, b.means_)
    GaussianMixture(3, random_state=np.random.default_rng(0)).fit(x)
    GaussianMixture(3, random_state=np.random.RandomState(0)).fit(x)


def test_pipeline_and_clone(faithful):
    pipe = make_pipeline(StandardScaler(), GaussianMixture(2, random_state=0)).fit(faithful)
    assert pipe.predict(faithful).shape == (272,)
    assert np.isfinite(pipe.score(faithful))
    params = clone(GaussianMixture(4, covariance_type="tied", dtype="float32")).get_params()
    assert params["n_components"] == 4 and params["dtype"] == "float32"


def test_all_four_types_on_dataframe_with_integer_column():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200),
                       "b": rng.integers(0, 30, size=200)})  # integer-valued column
    for covariance_type in ("full", "tied", "diag", "spherical"):
        model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(df)
        for attribute in ("weights_", "means_", "covariances_", "precisions_",
                          "precisions_cholesky_"):
            assert np.all(np.isfinite(getattr(model, attribute)))

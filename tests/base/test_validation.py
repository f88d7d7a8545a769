"""Bad input gets a clear error naming the problem; the caller's data are never modified."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixture, NonNumericDataError


def test_nan_message_names_column_and_rows(faithful):
    df = faithful.copy()
    df.loc[[4, 17, 90], "waiting"] = np.nan
    with pytest.raises(ValueError, match=r"3 NaN values in column 'waiting' \(rows 4, 17, 90\)"):
        GaussianMixture(2).fit(df)


def test_inf_and_predict_time_nan(faithful):
    x = faithful.to_numpy()
    bad = x.copy()
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"infinite \(inf\) values in column 0 \(rows 7\)"):
        GaussianMixture(2).fit(bad)
    model = GaussianMixture(2, random_state=0).fit(x)
    bad[7, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)


@pytest.mark.parametrize(("data", "message"), [
    (np.empty((0, 2)), "0 sample"),
    (np.empty((5, 0)), "0 feature"),
    (np.arange(10.0), "Expected 2D array"),
    (np.array([[1.0, 2.0]]), "1 sample"),
])
def test_shape_errors(data, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(1).fit(data)


def test_too_few_samples_for_components():
    with pytest.raises(ValueError, match=r"n_samples >= n_components.*n_components = 5"):
        GaussianMixture(5).fit(np.random.default_rng(0).normal(size=(4, 2)))


def test_text_columns_are_named(faithful):
    df = faithful.assign(site=["old faithful"] * len(faithful))
    with pytest.raises(ValueError, match="column 'site' is not numeric"):
        GaussianMixture(2).fit(df)
    with pytest.raises(NonNumericDataError, match="text dtype"):
        GaussianMixture(2).fit(np.array([["1.0", "2.0"], ["3.0", "4.5"], ["0.1", "9.0"]]))
    mixed = faithful.to_numpy().astype(object)
    mixed[3, 1] = "n/a"
    with pytest.raises(ValueError, match=r"column 1 is not numeric \(row 3 holds 'n/a'"):
        GaussianMixture(2).fit(mixed)


def test_wrong_number_of_features_at_predict(faithful):
    model = GaussianMixture(2, random_state=0).fit(faithful.to_numpy())
    with pytest.raises(ValueError, match="3 features, but GaussianMixture is expecting 2"):
        model.predict(np.ones((4, 3)))


def test_uninformative_columns(faithful):
    x = faithful.to_numpy()
    with pytest.raises(ValueError, match="column 'c' is constant"):
        GaussianMixture(2).fit(faithful.assign(c=3.0))
    with pytest.raises(ValueError, match="column 0 and column 2 are identical"):
        GaussianMixture(2).fit(np.column_stack([x, x[:, 0]]))
    with pytest.raises(ValueError, match="overflow"):
        GaussianMixture(2).fit(x * [1.0, 1e160])


def test_regularisation_swamping_a_tiny_column_warns(faithful):
    with pytest.warns(UserWarning, match="reg_covar=1e-06 exceeds 1% of the variance of "
                                         "column 'eruptions'"):
        GaussianMixture(2, random_state=0).fit(faithful * [1e-4, 1.0])


@pytest.mark.parametrize(("params", "name"), [
    (dict(n_components=0), "n_components"),
    (dict(covariance_type="VVV"), "covariance_type"),
    (dict(init_params="kmeans++"), "init_params"),
    (dict(tol=-1.0), "tol"),
    (dict(max_iter=1.5), "max_iter"),
    (dict(n_init=0), "n_init"),
    (dict(dtype="float16"), "dtype"),
    (dict(weights_init=[0.5, 0.6]), "weights_init"),
    (dict(means_init=np.zeros((3, 2))), "means_init"),
    (dict(precisions_init=np.array([np.eye(2), -np.eye(2)])), "precisions_init"),
    (dict(random_state="seed"), "random_state"),
])
def test_bad_parameters(params, name, faithful):
    with pytest.raises(ValueError, match=name):
        GaussianMixture(**{"n_components": 2, **params}).fit(faithful)


@pytest.mark.filterwarnings("ignore:X has feature names, but:UserWarning")
def test_inputs_never_modified(faithful):
    df = faithful.copy()
    x = df.to_numpy().copy()
    x.setflags(write=False)  # a write would raise
    means = np.array([[2.0, 55.0], [4.5, 80.0]])
    means_copy = means.copy()
    model = GaussianMixture(2, means_init=means, random_state=0).fit(x)
    model.predict(x), model.score_samples(df), model.predict_proba(x)
    pd.testing.assert_frame_equal(df, faithful)
    np.testing.assert_array_equal(x, faithful.to_numpy())
    np.testing.assert_array_equal(means, means_copy)


def test_numbers_written_as_text_are_refused_by_column(faithful):
    text = faithful.astype(str)
    with pytest.raises(NonNumericDataError, match=r"\['eruptions', 'waiting'\] hold text"):
        GaussianMixture(2).fit(text)
    model = GaussianMixture(2, random_state=0).fit(faithful)
    with pytest.raises(NonNumericDataError, match="hold text"):
        model.predict(text.astype(object))
    model.predict(faithful.astype(object))  # numbers stored as objects stay accepted


def test_cluster_summaries_name_a_wrong_column_count(faithful):
    from bayesgmm import cluster_quality

    model = GaussianMixture(2, random_state=0).fit(faithful)
    with pytest.raises(ValueError, match="X has 1 columns; the model was fitted on 2"):
        cluster_quality(model, faithful.to_numpy()[:, :1])

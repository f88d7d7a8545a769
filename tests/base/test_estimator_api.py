"""scikit-learn's estimator conventions without scikit-learn (bayesgmm.base.estimator_api), checked
against scikit-learn's own BaseEstimator, validate_data and check_is_fitted."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn.base import BaseEstimator as SklearnBase
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted as sklearn_check_is_fitted
from sklearn.utils.validation import validate_data as sklearn_validate_data

from bayesgmm.base.estimator_api import BaseEstimator, check_is_fitted, validate_data
from bayesgmm.estimators.mixture_api import row_log_sum_exp


def _init(self, n_components=1, *, tol=1e-3, weights=None, label="a", missing=float("nan")):
    self.n_components, self.tol, self.weights = n_components, tol, weights
    self.label, self.missing = label, missing


class Ours(BaseEstimator):
    __init__ = _init

    def fit(self, X):
        self.fitted_ = True
        return self


class Theirs(SklearnBase):
    __init__ = _init

    def fit(self, X):
        self.fitted_ = True
        return self


Theirs.__name__ = Theirs.__qualname__ = "Ours"  # the same name in messages and reprs


@pytest.mark.parametrize("params", [{}, {"n_components": 3}, {"tol": 0.1, "label": "b"},
                                    {"weights": np.array([0.5, 0.5]), "missing": 1.0},
                                    {"weights": [0.2] * 40, "label": "x" * 80}])
def test_parameters_and_repr_as_scikit_learn(params):
    ours, theirs = Ours(**params), Theirs(**params)
    assert ours.get_params().keys() == theirs.get_params().keys()
    assert all(ours.get_params()[k] is theirs.get_params()[k] for k in params)
    short = sum(len(repr(v)) for v in params.values()) < 60  # scikit-learn elides long ones
    if short:
        assert repr(ours) == repr(theirs)
    assert ours.set_params(n_components=5, label="c") is ours and ours.n_components == 5
    with pytest.raises(ValueError) as mine:
        Ours(**params).set_params(bogus=1)
    with pytest.raises(ValueError) as reference:
        Theirs(**params).set_params(bogus=1)
    if short:
        assert str(mine.value) == str(reference.value)
    tail = str(reference.value).rpartition(")")[2]
    assert str(mine.value).startswith("Invalid parameter 'bogus' for estimator Ours(")
    assert str(mine.value).endswith(tail)


def test_nested_parameters_reach_a_held_estimator():
    outer = Ours(weights=Ours(tol=0.5))
    assert outer.get_params()["weights__tol"] == 0.5
    outer.set_params(weights__tol=0.25)
    assert outer.weights.tol == 0.25


def test_check_is_fitted_raises_scikit_learns_error():
    for attributes in (None, "fitted_", ["fitted_", "other_"]):
        with pytest.raises(NotFittedError) as mine:
            check_is_fitted(Ours(), attributes)
        with pytest.raises(NotFittedError) as reference:
            sklearn_check_is_fitted(Theirs(), attributes)
        assert str(mine.value) == str(reference.value)
    check_is_fitted(Ours().fit(None))
    with pytest.raises(TypeError, match="is a class"):
        check_is_fitted(Ours)


def _frame(columns=("a", "b", "c"), rows=6):
    values = np.arange(rows * len(columns), dtype=float).reshape(rows, len(columns))
    return pd.DataFrame(values, columns=list(columns))


INPUTS = {
    "float64": lambda: np.arange(12.0).reshape(4, 3),
    "float32 Fortran": lambda: np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3)),
    "int": lambda: np.arange(12).reshape(4, 3),
    "frame": _frame,
    "frame of ints": lambda: _frame().astype(int),
    "frame, int column names": lambda: pd.DataFrame(np.ones((4, 3))),
    "frame, numpy string names": lambda: pd.DataFrame(np.ones((4, 2)),
                                                      columns=[np.str_("a"), np.str_("b")]),
    "list": lambda: [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
    "sparse": lambda: sp.csr_matrix(np.eye(3)),
    "1-D": lambda: np.arange(3.0),
    "bool": lambda: np.ones((4, 3), bool),
    "one row": lambda: np.ones((1, 3)),
}


def _outcome(validate, estimator, X, **kwargs):
    """What validation did: the array (or the error) and the warnings and fitted names."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = validate(estimator, X, **kwargs)
        except (TypeError, ValueError) as error:
            result = f"{type(error).__name__}: {error}"
    return (result, [str(w.message) for w in caught], getattr(estimator, "n_features_in_", None),
            getattr(estimator, "feature_names_in_", None))


def _same(mine, reference):
    (a, warned_a, n_a, names_a), (b, warned_b, n_b, names_b) = mine, reference
    assert warned_a == warned_b and n_a == n_b
    assert (names_a is None) == (names_b is None)
    if names_a is not None:
        np.testing.assert_array_equal(names_a, names_b)
    if isinstance(b, str):
        assert a == b
    else:
        assert type(a) is type(b) and a.dtype == b.dtype
        np.testing.assert_array_equal(a.toarray() if sp.issparse(a) else a,
                                      b.toarray() if sp.issparse(b) else b)


THEIR_OPTIONS = {"dtype": np.float64, "ensure_all_finite": False, "copy": False}


@pytest.mark.parametrize("fit_with", ["float64", "frame"])
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_validate_data_as_scikit_learn(name, fit_with):
    for min_samples in (1, 2):
        mine = _outcome(validate_data, Ours(), INPUTS[name](), reset=True,
                        ensure_min_samples=min_samples)
        reference = _outcome(sklearn_validate_data, Theirs(), INPUTS[name](), reset=True,
                             ensure_min_samples=min_samples, **THEIR_OPTIONS)
        _same(mine, reference)
    ours, theirs = Ours(), Theirs()  # fitted on one input, then given another
    validate_data(ours, INPUTS[fit_with](), reset=True)
    sklearn_validate_data(theirs, INPUTS[fit_with](), reset=True, **THEIR_OPTIONS)
    for later in (INPUTS[name](), _frame(("a", "b", "x")), _frame(("a", "b")), np.ones((3, 2))):
        _same(_outcome(validate_data, ours, later, reset=False),
              _outcome(sklearn_validate_data, theirs, later, reset=False, **THEIR_OPTIONS))


def test_a_float64_array_is_returned_as_is():  # no copy, as scikit-learn with copy=False
    X = np.arange(12.0).reshape(4, 3)
    assert validate_data(Ours(), X, reset=True) is X


def test_row_log_sum_exp_is_scipys_logsumexp():
    rng = np.random.default_rng(0)
    log_prob = rng.normal(size=(200, 5)) * np.array([1.0, 10.0, 300.0, 800.0, 1e-3])
    log_prob[3] = -np.inf
    log_prob[4, 2] = -np.inf
    log_prob[5, 1] = 1e300
    np.testing.assert_allclose(row_log_sum_exp(log_prob), logsumexp(log_prob, axis=1),
                               rtol=1e-14)

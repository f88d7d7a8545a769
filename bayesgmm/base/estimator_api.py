"""scikit-learn's estimator conventions, without importing scikit-learn on the common path.

Importing scikit-learn takes 0.7-0.9 s (it imports SciPy's statistics), more than a whole
warm fit on notebook-sized data. bayesgmm's estimators follow scikit-learn's conventions by
duck typing, as scikit-learn documents for third-party estimators:

* :class:`BaseEstimator`: ``get_params`` / ``set_params`` (nested ``a__b`` names too), a
  ``repr`` with the parameters that differ from their defaults, ``__sklearn_tags__``, and an
  HTML representation for notebooks. ``sklearn.base.clone``, pipelines, grid searches and
  ``check_estimator`` use these;
* :class:`DensityMixin`: the density-estimator tag;
* :func:`check_is_fitted` and :func:`validate_data`: scikit-learn's checks and messages.
  ``validate_data`` handles numeric numpy arrays and pandas DataFrames itself and hands every
  other input (sparse matrices, lists, mismatched feature names, too few rows, ...) to
  scikit-learn's own, so those keep scikit-learn's exact behaviour.

scikit-learn is imported only where its own objects are needed: its tags, its exception and
warning classes (:func:`convergence_warning`, :class:`NotFittedError` when raised), its
validation for unusual input, and the HTML diagram.
"""

from __future__ import annotations

import html
import inspect
import math
from collections import defaultdict
from typing import Any

import numpy as np

#: Numeric dtype kinds converted to float64 without scikit-learn (bool, complex and objects
#: go through scikit-learn's checks).
_NUMERIC_KINDS = frozenset("fiu")


class BaseEstimator:
    """Parameters from ``__init__``'s signature, as ``sklearn.base.BaseEstimator``."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        parameters = [p for p in inspect.signature(init).parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD]
        if any(p.kind == p.VAR_POSITIONAL for p in parameters):
            raise RuntimeError(f"{cls.__name__}.__init__ must name its parameters (no *args), "
                               "as scikit-learn's estimator conventions require")
        return sorted(p.name for p in parameters)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters (with ``deep``, those of estimators it holds too, as
        ``name__parameter``)."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{key}", inner)
                           for key, inner in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set parameters (``name__parameter`` reaches into a held estimator); returns self."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict] = defaultdict(dict)
        for key, value in params.items():
            name, delimiter, inner = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if delimiter:
                nested[name][inner] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, inner_params in nested.items():
            valid[name].set_params(**inner_params)
        return self

    def _changed_params(self) -> dict[str, Any]:
        """The parameters whose values differ from ``__init__``'s defaults."""
        defaults = {p.name: p.default
                    for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = {}
        for name, value in self.get_params(deep=False).items():
            default = defaults.get(name, inspect.Parameter.empty)
            same = value is default or repr(value) == repr(default)
            both_nan = (isinstance(value, float) and isinstance(default, float)
                        and math.isnan(value) and math.isnan(default))
            if not (same or both_nan):
                changed[name] = value
        return changed

    def __repr__(self) -> str:
        name = type(self).__name__
        items = [f"{key}={value!r}" for key, value in self._changed_params().items()]
        line = f"{name}({', '.join(items)})"
        if len(line) <= 79:
            return line
        return f"{name}(" + (",\n" + " " * (len(name) + 1)).join(items) + ")"

    def _repr_html_(self) -> str:
        """scikit-learn's estimator diagram in notebooks (imports scikit-learn), or the
        ``repr`` when scikit-learn cannot draw it."""
        try:
            from sklearn.utils import estimator_html_repr

            return estimator_html_repr(self)
        except Exception:
            return f"<pre>{html.escape(repr(self))}</pre>"

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=None, regressor_tags=None, classifier_tags=None)


class DensityMixin:
    """Marks a density estimator, as ``sklearn.base.DensityMixin`` (list it before
    :class:`BaseEstimator`)."""

    _estimator_type = "DensityEstimator"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "density_estimator"
        return tags


def convergence_warning() -> type[Warning]:
    """``sklearn.exceptions.ConvergenceWarning``, imported when a fit needs to warn."""
    from sklearn.exceptions import ConvergenceWarning

    return ConvergenceWarning


def _is_fitted(estimator, attributes) -> bool:
    if attributes is not None:
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        return all(hasattr(estimator, name) for name in names)
    if hasattr(estimator, "__sklearn_is_fitted__"):
        return estimator.__sklearn_is_fitted__()
    return any(name.endswith("_") and not name.startswith("__") for name in vars(estimator))


def check_is_fitted(estimator, attributes: str | list[str] | None = None) -> None:
    """Raise scikit-learn's ``NotFittedError`` (with its message) unless ``estimator`` is
    fitted: it has ``attributes``, or else any attribute ending in ``_``."""
    if inspect.isclass(estimator):
        raise TypeError(f"{estimator} is a class, not an instance.")
    if not hasattr(estimator, "fit"):
        raise TypeError(f"{estimator} is not an estimator instance.")
    if not _is_fitted(estimator, attributes):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet. "
                             "Call 'fit' with appropriate arguments before using this "
                             "estimator.")


def _is_data_frame(X) -> bool:
    kind = type(X)
    return kind.__name__ == "DataFrame" and kind.__module__.partition(".")[0] == "pandas"


def _own_conversion(estimator, X, reset: bool, ensure_min_samples: int):
    """``(array, feature names or None)`` for input this module converts itself, or None to
    let scikit-learn do it."""
    fitted_names = None if reset else getattr(estimator, "feature_names_in_", None)
    if type(X) is np.ndarray:
        if X.ndim != 2 or X.dtype.kind not in _NUMERIC_KINDS or fitted_names is not None:
            return None
        array, names = X, None
    elif _is_data_frame(X):
        dtypes = list(X.dtypes)
        columns = list(X.columns)
        if not all(isinstance(d, np.dtype) and d.kind in _NUMERIC_KINDS for d in dtypes):
            return None
        if not all(type(c) is str for c in columns):  # as scikit-learn: not numpy strings
            return None
        names = np.asarray(columns, dtype=object)
        if fitted_names is not None and not np.array_equal(names, fitted_names):
            return None
        if not reset and fitted_names is None and hasattr(estimator, "n_features_in_"):
            return None  # fitted without names: scikit-learn's warning
        array = X
    else:
        return None
    n_samples, n_features = array.shape
    if n_samples < max(ensure_min_samples, 1) or n_features < 1:
        return None
    converted = (array.to_numpy(dtype=np.float64) if names is not None
                 else np.asarray(array, dtype=np.float64))
    return converted, names


def validate_data(estimator, X, *, reset: bool, ensure_min_samples: int = 1) -> np.ndarray:
    """``sklearn.utils.validation.validate_data(estimator, X, reset=reset, dtype=float64,
    ensure_all_finite=False, ensure_min_samples=..., copy=False)``: X as a float64 array
    (N, D), with ``n_features_in_`` and ``feature_names_in_`` set (``reset``) or checked.

    Numeric numpy arrays and DataFrames with string column names are converted here (an
    array already float64 is returned as is, as scikit-learn does with ``copy=False``);
    everything else goes to scikit-learn.
    """
    own = _own_conversion(estimator, X, reset, ensure_min_samples)
    if own is None:
        from sklearn.utils.validation import validate_data as sklearn_validate_data

        return sklearn_validate_data(estimator, X, reset=reset, dtype=np.float64,
                                     ensure_all_finite=False,
                                     ensure_min_samples=ensure_min_samples, copy=False)
    array, names = own
    n_features = array.shape[1]
    if reset:
        estimator.n_features_in_ = n_features
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif hasattr(estimator, "n_features_in_") and n_features != estimator.n_features_in_:
        raise ValueError(f"X has {n_features} features, but {type(estimator).__name__} is "
                         f"expecting {estimator.n_features_in_} features as input.")
    return array

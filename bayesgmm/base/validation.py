"""Input checks that fail loudly and say what to do.

Every check names the offending argument, column and rows, and the fix. Nothing the caller
passed is modified: conversions always produce new arrays.
"""

from __future__ import annotations

import numbers
import warnings
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import scipy.sparse as sp

from bayesgmm.base.estimator_api import validate_data

#: Largest absolute value accepted: squares and products of larger values overflow float64.
MAX_ABS_VALUE = 1e150

_SHOWN_ROWS = 5


class NonNumericDataError(TypeError, ValueError):
    """X holds values that are not numbers (a ``ValueError``, and a ``TypeError`` as numpy's
    conversion errors are)."""


class DegenerateFitError(ValueError):
    """Every restart of EM ended with a degenerate component."""


def column_label(names, index: int) -> str:
    return f"column {names[index]!r}" if names is not None else f"column {index}"


def _row_list(rows: np.ndarray) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    return f"rows {shown}" + (f", ... ({len(rows)} rows)" if len(rows) > _SHOWN_ROWS else "")


def _text_columns(X) -> list:
    """Names of the DataFrame columns of ``X`` that hold strings (none for arrays)."""
    if not hasattr(X, "dtypes"):
        return []
    return [name for name, dtype in X.dtypes.items()
            if getattr(dtype, "kind", "O") in ("O", "U", "S")
            and X[name].map(lambda value: isinstance(value, str)).any()]


def _describe_non_numeric(X) -> str | None:
    """Where the first non-numeric value of ``X`` is, or None if it has none we can find."""
    if hasattr(X, "columns"):
        columns = [(str(name), X[name].to_numpy()) for name in X.columns]
    else:
        array = np.asarray(X, dtype=object)
        if array.ndim != 2:
            return None
        columns = [(str(j), array[:, j]) for j in range(array.shape[1])]
    for name, values in columns:
        for row, value in enumerate(values):
            if value is None or isinstance(value, numbers.Number | np.bool_):
                continue
            try:
                float(value)
            except (TypeError, ValueError):
                label = f"column {name!r}" if hasattr(X, "columns") else f"column {name}"
                return (f"X {label} is not numeric (row {row} holds {value!r} of type "
                        f"{type(value).__name__}); encode it as numbers or drop the column")
    return None


def check_array_input(X, estimator, *, reset: bool, ensure_min_samples: int = 1,
                      allow_nan: bool = False) -> np.ndarray:
    """Validate ``X`` for ``estimator`` and return it as a float64 ndarray (N, D), not to be
    written to (``X`` itself when it already is one).

    Sets or checks ``n_features_in_`` / ``feature_names_in_`` (``reset``) as scikit-learn's
    ``validate_data`` does (:func:`bayesgmm.base.estimator_api.validate_data`); rejects text,
    non-numeric objects, infinity and (unless ``allow_nan``, for missing values) NaN with
    messages that name the columns and rows.
    """
    if not sp.issparse(X):
        kind = getattr(getattr(X, "dtype", None), "kind", None)
        if kind in ("U", "S"):
            raise NonNumericDataError(
                f"X has a text dtype ({X.dtype}); convert it to numbers before fitting")
        text = _text_columns(X)
        if text:  # name the first value that is no number, else say they are numbers as text
            raise NonNumericDataError(
                _describe_non_numeric(X) or f"X column(s) {text} hold text (numbers written "
                "as strings are not converted silently); convert them to numbers or drop them")
    try:
        array = validate_data(estimator, X, reset=reset, ensure_min_samples=ensure_min_samples)
    except (TypeError, ValueError) as err:
        detail = None if sp.issparse(X) else _describe_non_numeric(X)
        if detail is None:
            raise
        raise NonNumericDataError(f"{detail} ({err})") from None
    check_finite(array, getattr(estimator, "feature_names_in_", None), allow_nan=allow_nan,
                 nan_hint=" or fit with missing='marginalize'")
    return array


def check_finite(X: np.ndarray, names=None, argument: str = "X", *, allow_nan: bool = False,
                 nan_hint: str = "", first_row: int = 0) -> None:
    """Raise a ValueError naming the columns and rows of any NaN (unless ``allow_nan``) or
    infinite value; rows are numbered from ``first_row`` (a chunk's place in a stream)."""
    bad = np.isinf(X) if allow_nan else ~np.isfinite(X)
    if not bad.any():
        return
    problems = []
    checks = [("infinite (inf)", np.isinf)] if allow_nan else [("NaN", np.isnan),
                                                                ("infinite (inf)", np.isinf)]
    for j in np.flatnonzero(bad.any(axis=0)):
        column = X[:, j]
        for what, test in checks:
            rows = np.flatnonzero(test(column)) + first_row
            if rows.size:
                problems.append(f"{rows.size} {what} values in {column_label(names, j)} "
                                f"({_row_list(rows)})")
    hint = nan_hint if np.isnan(X).any() and not allow_nan else ""
    raise ValueError(f"{argument} contains " + "; ".join(problems)
                     + f"; drop or impute them{hint}")


MISSING_OPTIONS = ("error", "marginalize")


def check_missing_option(missing) -> bool:
    """Validate a ``missing`` argument; True when NaN marks missing values."""
    if missing not in MISSING_OPTIONS:
        raise ValueError(f"missing={missing!r} is invalid: choose 'error' (NaN is refused) or "
                         "'marginalize' (NaN marks values missing at random)")
    return missing == "marginalize"


def drop_empty_rows(X: np.ndarray, names=None) -> np.ndarray:
    """Check a data set with missing values (NaN): a column with no observed value is an error;
    rows with no observed value carry no information and are dropped with a warning.

    Returns the rows kept (a new array, or ``X`` itself when none is dropped).
    """
    observed = ~np.isnan(X)
    empty_columns = np.flatnonzero(~observed.any(axis=0))
    if empty_columns.size:
        labels = ", ".join(column_label(names, j) for j in empty_columns)
        raise ValueError(f"X {labels} has no observed value (every entry is NaN); drop it")
    empty_rows = np.flatnonzero(~observed.any(axis=1))
    if not empty_rows.size:
        return X
    if empty_rows.size == X.shape[0]:
        raise ValueError("every row of X is entirely missing (NaN)")
    warnings.warn(f"X has {empty_rows.size} row(s) with every value missing ("
                  f"{_row_list(empty_rows)}); they carry no information and were left out of "
                  "the fit", UserWarning, stacklevel=4)
    return X[observed.any(axis=1)]


def check_enough_samples(n_samples: int, n_components: int) -> None:
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = {n_components}, "
            f"n_samples = {n_samples}; use fewer components or more data")


def merge_moments(count_a: int, mean_a: np.ndarray, m2_a: np.ndarray, count_b: int,
                  mean_b: np.ndarray, m2_b: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update: count, mean and sum of squared deviations (D,) of two
    parts of a data set combined."""
    total = count_a + count_b
    delta = mean_b - mean_a
    return (total, mean_a + delta * count_b / total,
            m2_a + m2_b + delta**2 * count_a * count_b / total)


@dataclass(frozen=True)
class ColumnSummary:
    """Per-column statistics of X (D,), computed in one place and shared by the checks and
    the scaling."""

    mean: np.ndarray
    var: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> ColumnSummary:
        """Summaries of the observed values (NaN, a missing value, is skipped)."""
        # Squares of values beyond MAX_ABS_VALUE overflow here; such columns are refused by
        # name afterwards (check_columns_informative), so numpy's warning would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isnan(X).any():
                mean = np.nanmean(X, axis=0)
                return cls(mean, np.nanmean((X - mean) ** 2, axis=0), np.nanmin(X, axis=0),
                           np.nanmax(X, axis=0))
            mean = X.mean(axis=0)
            return cls(mean, np.mean((X - mean) ** 2, axis=0), X.min(axis=0), X.max(axis=0))

    @classmethod
    def merge(cls, counts: np.ndarray, parts: np.ndarray) -> ColumnSummary:
        """The summary of data split in parts: ``counts`` (P,) rows per part and ``parts``
        (P, 4, D) each part's ``[mean, var, minimum, maximum]``."""
        count, mean, m2 = int(counts[0]), parts[0, 0], parts[0, 1] * counts[0]
        for n, (part_mean, part_var, _, _) in zip(counts[1:], parts[1:], strict=True):
            count, mean, m2 = merge_moments(count, mean, m2, int(n), part_mean, part_var * n)
        return cls(mean, m2 / count, parts[:, 2].min(axis=0), parts[:, 3].max(axis=0))


def check_columns_informative(X: np.ndarray, summary: ColumnSummary, names=None) -> None:
    """Reject constant columns, identical columns and magnitudes that overflow moments."""
    largest = np.maximum(np.abs(summary.minimum), np.abs(summary.maximum))
    huge = np.flatnonzero(largest > MAX_ABS_VALUE)
    if huge.size:
        j = huge[0]
        raise ValueError(
            f"X {column_label(names, j)} holds values up to {largest[j]:.3g}, beyond "
            f"{MAX_ABS_VALUE:.0e}: their squares overflow; rescale the column (e.g. divide by "
            "a power of ten) before fitting")
    constant = np.flatnonzero(summary.maximum == summary.minimum)
    if constant.size:
        labels = ", ".join(column_label(names, j) for j in constant)
        raise ValueError(
            f"X {labels} is constant (every value is {summary.minimum[constant[0]]!r}); it "
            "carries no "
            "information for clustering and makes every covariance singular; drop it")
    # Only columns with the same summary can be identical; compare those exactly.
    groups = defaultdict(list)
    for j, key in enumerate(zip(summary.mean, summary.var, summary.minimum, summary.maximum,
                                strict=True)):
        groups[key].append(j)
    for candidates in groups.values():
        for a, b in combinations(candidates, 2):
            if np.array_equal(X[:, a], X[:, b], equal_nan=True):
                raise ValueError(
                    f"X {column_label(names, a)} and {column_label(names, b)} are identical; "
                    "the covariance of a duplicated column is singular. Keep one of them")


def warn_if_regularisation_dominates(summary: ColumnSummary, reg_covar: float,
                                     names=None) -> None:
    """Warn when ``reg_covar`` (in data units, as scikit-learn) swamps a column's variance."""
    variance = summary.var
    swamped = np.flatnonzero(reg_covar > 0.01 * variance)
    if swamped.size:
        j = swamped[0]
        warnings.warn(
            f"reg_covar={reg_covar:g} exceeds 1% of the variance of {column_label(names, j)} "
            f"({variance[j]:.3g}); the regularisation, not the data, will shape the fit along "
            "it. Rescale the data or lower reg_covar.", UserWarning, stacklevel=3)


def as_frame(data, names=None):
    """``data`` as a DataFrame: a DataFrame as it is; a 2-D array with columns ``names``, or
    x0, x1, ... when there are none."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    array = np.asarray(data)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D table, got an array of shape {array.shape}")
    if names is not None and len(names) != array.shape[1]:
        raise ValueError(f"X has {array.shape[1]} columns; the model was fitted on "
                         f"{len(names)} ({', '.join(map(str, names))})")
    columns = list(names) if names is not None else [f"x{j}" for j in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns)


def require(estimator, ok: bool, name: str, what: str) -> None:
    """Raise a ValueError naming ``estimator``'s parameter ``name`` and its value unless
    ``ok``."""
    if not ok:
        raise ValueError(f"{name}={getattr(estimator, name)!r} is invalid: {what}")


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# --------------------------------------------------------------------------- starting values
# The messages begin with scikit-learn's text for the same failure (its own tests match it),
# then say what bayesgmm's parameter needs.

#: scikit-learn's message when a fit fails for want of a well-defined covariance.
ILL_DEFINED_COVARIANCE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data.")


def check_initial_weights(weights_init, n_components: int) -> np.ndarray:
    """``weights_init`` as float64 (K,), or a ValueError: wrong shape, outside [0, 1], or not
    summing to 1 (scikit-learn's tolerance: ``|1 - sum| <= 1e-8``)."""
    weights = np.array(weights_init, dtype=np.float64)
    if weights.shape != (n_components,):
        raise ValueError(
            f"The parameter 'weights' should have the shape of {(n_components,)}, but got "
            f"{weights.shape}: weights_init needs one weight per component "
            f"(n_components={n_components}).")
    low, high = float(np.min(weights)), float(np.max(weights))
    if low < 0 or high > 1:
        # scikit-learn's text names the smallest value "max value" and the largest "min value"
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{low:.5f}, min value {high:.5f}. (weights_init: smallest {low:.6g}, largest "
            f"{high:.6g}; every weight must lie in [0, 1].)")
    if not np.allclose(np.abs(1.0 - weights.sum()), 0.0):
        raise ValueError(
            "The parameter 'weights' should be normalized, but got sum(weights) = "
            f"{weights.sum():.5f}. (weights_init must sum to 1.)")
    return weights


def check_initial_precisions(precisions_init, family, n_components: int,
                             n_dims: int) -> np.ndarray:
    """``precisions_init`` as float64 in the shape of the covariance ``family``
    (:meth:`~bayesgmm.core.covariance_family.CovarianceFamily.parameter_shape`), or a ValueError:
    wrong shape, or not what the family requires (symmetric positive-definite matrices for
    full and tied, positive values for diag and spherical)."""
    precisions = np.array(precisions_init, dtype=np.float64)
    expected = family.parameter_shape(n_components, n_dims)
    name = f"'{family.name} precision'"
    if precisions.shape != expected:
        raise ValueError(
            f"The parameter {name} should have the shape of {expected}, but got "
            f"{precisions.shape}: precisions_init for covariance_type={family.name!r}, "
            f"n_components={n_components} and {n_dims} features.")
    if not family.valid_precisions(precisions):
        raise ValueError(f"{name} should be {family.precision_requirement}. (precisions_init "
                         f"of covariance_type={family.name!r} must be.)")
    return precisions

"""Bundled data sets (no downloads, ever)."""

from importlib import resources

import numpy as np
import pandas as pd


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions (R's ``datasets::faithful``), 272 rows.

    Returns
    -------
    DataFrame (272, 2)
        ``eruptions``: eruption duration in minutes (recorded to the second or the minute);
        ``waiting``: minutes to the next eruption (whole minutes, so values repeat).

    Notes
    -----
    Härdle (1991), via R's base ``datasets`` package; public domain.
    """
    with resources.files(__package__).joinpath("faithful.csv").open("r") as handle:
        return pd.read_csv(handle)


#: The simulated segments of :func:`make_segments`: share, means and (sd, correlation) of
#: (annual_spend, visits_per_month, basket_size).
_SEGMENTS = (
    (0.5, (1100.0, 3.0, 38.0), (220.0, 0.7, 8.0), 0.5),   # occasional
    (0.3, (1900.0, 5.0, 36.0), (420.0, 1.3, 8.0), 0.6),   # regular
    (0.2, (2300.0, 3.6, 60.0), (500.0, 1.0, 13.0), 0.3),  # bulk
)


def make_segments(n_samples: int = 600, random_state=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulated customer table from a known three-component Gaussian mixture.

    The segments overlap (one customer in five to ten sits between two of them), so
    assignment uncertainty is real, and the truth is known, so stated probabilities can be checked.

    Parameters
    ----------
    n_samples : int
    random_state : int, numpy Generator or None

    Returns
    -------
    data : DataFrame (n_samples, 3)
        ``annual_spend``, ``visits_per_month``, ``basket_size``.
    segment : ndarray (n_samples,) of int
        The true segment: 0 occasional (50%), 1 regular (30%), 2 bulk (20%).
    """
    rng = np.random.default_rng(random_state)
    shares = np.array([share for share, *_ in _SEGMENTS])
    segment = rng.choice(len(_SEGMENTS), size=n_samples, p=shares)
    rows = np.empty((n_samples, 3))
    for k, (_, mean, sd, rho) in enumerate(_SEGMENTS):
        sd = np.asarray(sd)
        correlation = np.full((3, 3), rho)
        np.fill_diagonal(correlation, 1.0)
        mask = segment == k
        rows[mask] = rng.multivariate_normal(mean, correlation * np.outer(sd, sd), mask.sum())
    data = pd.DataFrame(rows, columns=["annual_spend", "visits_per_month", "basket_size"])
    return data, segment

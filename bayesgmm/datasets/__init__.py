"""Bundled data sets (no downloads, ever)."""

from importlib import resources

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

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


def make_mixture(n_samples: int, n_components: int, n_features: int, *,
                 separation: float = 2.0, elongation: float = 4.0, random_state=None
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows from a random Gaussian mixture with known truth: unequal weights, randomly rotated
    and elongated covariances, and means ``separation``-separated (Dasgupta 1999; Maitra 2009):
    ``||mu_i - mu_j|| >= separation * sqrt(D * max(lambda_max(S_i), lambda_max(S_j)))`` for
    every pair. About 2 is separated but overlapping (a few points in a hundred sit between
    two clusters); 1 overlaps heavily.

    Parameters
    ----------
    n_samples, n_components (K), n_features (D) : int
    separation : float, default=2.0
    elongation : float, default=4.0
        Largest ratio of a covariance's eigenvalues (drawn log-uniformly in ``[1, this]``).
    random_state : int, numpy Generator or None

    Returns
    -------
    data : DataFrame (n_samples, D), columns ``x0..``
    labels : ndarray (n_samples,) the true component of each row; every component has at
        least ``n_samples // (3 K)`` rows; the others are drawn with weights
        ``~ Dirichlet(4, ..., 4)``.
    """
    rng = np.random.default_rng(random_state)
    weights = rng.dirichlet(np.full(n_components, 4.0))
    covariances = []
    for _ in range(n_components):
        rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        eigenvalues = np.exp(rng.uniform(-np.log(elongation), 0.0, n_features))
        covariances.append((rotation * eigenvalues) @ rotation.T)
    largest = np.array([np.linalg.eigvalsh(c)[-1] for c in covariances])
    means = np.zeros((n_components, n_features))
    box = separation * np.sqrt(n_features) * n_components ** (1.0 / n_features) * 1.5
    for k in range(n_components):
        for _ in range(10_000):
            candidate = rng.uniform(-box, box, n_features)
            gaps = np.linalg.norm(means[:k] - candidate, axis=1)
            needed = separation * np.sqrt(n_features * np.maximum(largest[:k], largest[k]))
            if np.all(gaps >= needed):
                break
        else:  # pragma: no cover - the box holds K separated means with room to spare
            raise RuntimeError("could not place the means; lower the separation")
        means[k] = candidate
    labels = rng.permutation(np.concatenate([
        np.repeat(np.arange(n_components), n_samples // (3 * n_components)),
        rng.choice(n_components, n_samples - n_components * (n_samples // (3 * n_components)),
                   p=weights)]))
    rows = np.empty((n_samples, n_features))
    for k in range(n_components):
        mask = labels == k
        rows[mask] = rng.multivariate_normal(means[k], covariances[k], mask.sum())
    return pd.DataFrame(rows, columns=[f"x{j}" for j in range(n_features)]), labels

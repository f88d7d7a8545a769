"""Shared data sets for the tests: all bundled, nothing downloaded."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine

from bayesgmm import load_faithful


def make_mixture(n=600, seed=0, separation=6.0):
    """Three well-separated 3-D Gaussian clusters with known labels."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [separation, 0.0, 1.0], [0.0, separation, -1.0]])
    covs = np.array([
        [[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]],
        [[0.6, -0.2, 0.0], [-0.2, 1.2, 0.0], [0.0, 0.0, 0.4]],
        [[0.9, 0.0, 0.3], [0.0, 0.7, 0.0], [0.3, 0.0, 1.1]],
    ])
    labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    x = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])
    return x, labels, means, covs


@pytest.fixture(scope="session")
def faithful():
    return load_faithful()


DATASETS = {
    "synthetic": lambda: make_mixture()[0],
    "faithful": lambda: load_faithful().to_numpy(),
    "iris": lambda: load_iris().data,
    "wine": lambda: load_wine().data,
}

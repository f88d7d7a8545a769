"""Quick start on Old Faithful (mirrors ``notebooks/01_quickstart.ipynb``).

One EM fit checked against scikit-learn, the choice of K and covariance type by BIC, the share
of uncertain assignments, and a save/load round trip.

Run: ``.venv/bin/python examples/quickstart.py`` (``BAYESGMM_SMALL=1`` for a shorter grid).
"""

import tempfile
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import bayesgmm
from bayesgmm import GaussianMixture, select_model
from bayesgmm.app.workflow import small_settings


def main() -> None:
    small = bool(small_settings())
    data = bayesgmm.load_faithful()

    model = GaussianMixture(n_components=2, n_init=5, random_state=0).fit(data)
    reference = SklearnGaussianMixture(2, n_init=5, random_state=0).fit(data)
    print(f"K=2 full: mean log-likelihood bayesgmm {model.score(data):.6f}, "
          f"scikit-learn {reference.score(data):.6f}")

    selection = select_model(data, n_components=range(1, 6 if small else 10), random_state=0)
    print(selection.table.head(5)[["covariance_type", "n_components", "log_likelihood", "bic",
                                   "icl", "selected"]].to_string(index=False))
    best = selection.best_
    uncertainty = 1 - best.predict_proba(data).max(axis=1)
    print(f"BIC selects {best.covariance_type}, K={best.n_components}; "
          f"{(uncertainty > 0.2).sum()} of {len(data)} eruptions have uncertainty > 0.2")
    print("component sizes:", np.bincount(best.predict(data)).tolist())

    with tempfile.TemporaryDirectory() as folder:
        loaded = bayesgmm.load(best.save(Path(folder) / "faithful.bgmm"))
    same = np.array_equal(loaded.predict_proba(data), best.predict_proba(data))
    print(f"save/load round trip gives identical probabilities: {same}")


if __name__ == "__main__":
    main()

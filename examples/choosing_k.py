"""How many clusters? BIC and ICL, and the posterior over the number of clusters under three
weight priors (mixture of finite mixtures, Dirichlet process, sparse finite mixture), side by
side on Old Faithful and on the wine data (mirrors ``notebooks/02_choosing_k.ipynb``).

Run: ``.venv/bin/python examples/choosing_k.py`` (about a minute: six Gibbs fits).
``BAYESGMM_SMALL=1`` runs short chains and a smaller grid, for a smoke test only.
"""

import pandas as pd
from sklearn.datasets import load_wine

import bayesgmm
from bayesgmm import BayesianGaussianMixture, compare_cluster_counts
from bayesgmm.app.workflow import small_settings


def main() -> None:
    small = bool(small_settings())
    # The default sampler (Gibbs with split-merge moves); one compiled program per data set
    # serves all three weight priors.
    bayes = BayesianGaussianMixture(n_components=10, progress_bar=False, **small_settings())
    grid = (dict(n_components=range(1, 4), covariance_types=("diag", "full")) if small
            else dict(n_components=range(1, 10)))
    wine = load_wine(as_frame=True)
    wine_x = (wine.data - wine.data.mean()) / wine.data.std()
    with pd.option_context("display.width", 120, "display.max_colwidth", 60):
        print("Old Faithful (full covariances)")
        print(compare_cluster_counts(bayesgmm.load_faithful(),
                                     bayes.set_params(covariance_type="full"),
                                     random_state=0, **grid).round(3).to_string())
        print("\nWine, standardised (diag covariances; ARI against the three cultivars)")
        print(compare_cluster_counts(wine_x, bayes.set_params(covariance_type="diag"),
                                     labels_true=wine.target, random_state=0,
                                     **grid).round(3).to_string())


if __name__ == "__main__":
    main()

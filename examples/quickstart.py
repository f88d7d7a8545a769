"""Fit a two-component Gaussian mixture to Old Faithful and compare covariance types.

Run: ``.venv/bin/python examples/faithful_em.py``
"""

from bayesgmm import GaussianMixture, load_faithful


def main() -> None:
    data = load_faithful()
    print(f"{'type':10s} {'log-lik':>10s} {'BIC':>10s} {'AIC':>10s}  iterations")
    for covariance_type in ("full", "tied", "diag", "spherical"):
        model = GaussianMixture(n_components=2, covariance_type=covariance_type, n_init=5,
                                random_state=0).fit(data)
        loglik = model.score(data) * len(data)
        print(f"{covariance_type:10s} {loglik:10.2f} {model.bic(data):10.2f} "
              f"{model.aic(data):10.2f}  {model.n_iter_}")
    best = GaussianMixture(n_components=2, n_init=5, random_state=0).fit(data)
    labels = best.predict(data)
    proba = best.predict_proba(data).max(axis=1)
    print(f"\n{(proba < 0.9).sum()} of {len(data)} eruptions are assigned with "
          "probability < 0.9")
    print("component sizes:", [int((labels == k).sum()) for k in range(2)])


if __name__ == "__main__":
    main()

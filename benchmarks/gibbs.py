"""Benchmarks of the default Bayesian fit (Gibbs sampler, mixture of finite mixtures): issue
#19's goals, with results written to benchmarks/README.md.

    python benchmarks/gibbs.py --suite faithful|recovery|consistency|scale|all [--quick]

faithful     Old Faithful, default settings, seeds 0-9, each seed a fresh process: the cold
             fit (compilation included) and a second, warm fit in the same process; the
             label-invariant diagnostics of the cold fit. Beside it, NUTS (method='nuts',
             its defaults) at the same seeds, also fresh processes.
recovery     Simulated mixtures with known K (datasets.make_mixture: K 2-6, D 2/3/5, N 300,
             1,000, 3,000; separated but overlapping): the default K answer (posterior mode
             of K+) and P(true K), against BIC over EM fits (K 1-8, full) and scikit-learn's
             BayesianGaussianMixture (DP, T=10, components over 1% weight), same data.
consistency  A 3-cluster 2-D mixture of overlapping, elongated components at n = 250, 1,000,
             2,500 and 10,000: P(K+ = 3) with the default weights and with the DP.
scale        make_blobs(100_000, 8, centers=8, cluster_std=1.5, random_state=0), T=20: time to
             R-hat <= 1.01 (short first run, then the extension rule) and the K answer,
             against scikit-learn's BayesianGaussianMixture (DP, T=20, max_iter=500).

Times are wall-clock on this machine; ratios are against the anchor measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bayes import markdown_table  # noqa: E402
from run import cold_env, write_readme  # noqa: E402


def _quiet_fit(model, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(x)
        elapsed = time.perf_counter() - start
    flagged = any("R-hat" in str(w.message) or "ESS" in str(w.message) for w in caught)
    return elapsed, flagged


def _invariant(model) -> dict:
    from bayesgmm.engine.bayes.diagnostics import label_invariant_draws

    table = model.diagnostics().loc[list(label_invariant_draws(model))]
    posterior = model.n_clusters_posterior()
    return {"max_r_hat": float(table["r_hat"].max()),
            "min_ess_bulk": float(table["ess_bulk"].min()),
            "k_mode": int(posterior.attrs["mode"]),
            "p_mode": float(posterior.max()),
            "credible_set": posterior.attrs["credible_set"]}


# ---------------------------------------------------------------- Old Faithful

def _faithful_child(seed: int, method: str) -> dict:
    from bayesgmm import BayesianGaussianMixture, load_faithful

    data = load_faithful()
    model = BayesianGaussianMixture(method=method, random_state=seed, progress_bar=False)
    cold, flagged = _quiet_fit(model, data)
    out = {"cold_s": cold, "warning": flagged, **_invariant(model)}
    if method == "gibbs":
        out["extra_draws"] = model.inference_info_["extra_draws"]
        warm, _ = _quiet_fit(BayesianGaussianMixture(random_state=seed + 100,
                                                     progress_bar=False), data)
        out["warm_s"] = warm
    return out


def _child(seed: int, method: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", method, str(seed)],
                            capture_output=True, text=True, check=True, env=cold_env())
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_faithful(seeds: list[int]) -> str:
    rows = []
    for seed in seeds:
        gibbs = _child(seed, "gibbs")
        nuts = _child(seed, "nuts")
        row = {"seed": seed, "cold_s": gibbs["cold_s"], "warm_s": gibbs["warm_s"],
               "extra_draws": gibbs["extra_draws"], "max_r_hat": gibbs["max_r_hat"],
               "min_ess_bulk": gibbs["min_ess_bulk"],
               "K+ (mode, P, 90% set)": f"{gibbs['k_mode']}, {gibbs['p_mode']:.2f}, "
                                        f"{gibbs['credible_set']}",
               "NUTS cold_s": nuts["cold_s"], "NUTS max_r_hat": nuts["max_r_hat"],
               "NUTS min_ess_bulk": nuts["min_ess_bulk"],
               "cold vs NUTS": nuts["cold_s"] / gibbs["cold_s"]}
        rows.append(row)
        print(row, flush=True)
    met = {
        "every label-invariant R-hat <= 1.01": sum(r["max_r_hat"] <= 1.01 for r in rows),
        "every label-invariant bulk ESS >= 400": sum(r["min_ess_bulk"] >= 400 for r in rows),
        "cold fit <= 10 s": sum(r["cold_s"] <= 10 for r in rows),
        "warm fit <= 2 s": sum(r["warm_s"] <= 2 for r in rows),
        "NUTS: R-hat <= 1.01 and ESS >= 400": sum(
            r["NUTS max_r_hat"] <= 1.01 and r["NUTS min_ess_bulk"] >= 400 for r in rows),
    }
    columns = list(rows[0])
    for r in rows:
        r["max_r_hat"], r["NUTS max_r_hat"] = f"{r['max_r_hat']:.3f}", f"{r['NUTS max_r_hat']:.3f}"
    summary = "\n".join(f"- {goal}: {count} of {len(rows)} seeds" for goal, count in met.items())
    cold = np.array([r["cold_s"] for r in rows])
    warm = np.array([r["warm_s"] for r in rows])
    return (markdown_table(rows, columns) + "\n\n" + summary
            + f"\n- cold fit: median {np.median(cold):.1f} s ({np.median(cold) / 10:.1f}x the "
              f"10 s goal); warm fit: median {np.median(warm):.1f} s "
              f"({np.median(warm) / 2:.1f}x the 2 s goal)")


# ---------------------------------------------------------------- known K

RECOVERY_DESIGN = [(2 + i % 5, (2, 3, 5)[i % 3], (300, 1000, 3000)[i // 5]) for i in range(15)]


def run_recovery(quick: bool) -> str:
    from sklearn.mixture import BayesianGaussianMixture as SkBGM

    from bayesgmm import BayesianGaussianMixture, select_model
    from bayesgmm.base.datasets import make_mixture

    design = RECOVERY_DESIGN[:5] if quick else RECOVERY_DESIGN
    rows = []
    for index, (k, d, n) in enumerate(design):
        x, _ = make_mixture(n, k, d, random_state=100 + index)
        model = BayesianGaussianMixture(random_state=index, progress_bar=False)
        fit_s, flagged = _quiet_fit(model, x)
        posterior = model.n_clusters_posterior()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            bic = select_model(x, n_components=range(1, 9), covariance_types=("full",),
                               random_state=index).best_.n_components
            bic_s = time.perf_counter() - start
            start = time.perf_counter()
            sk = SkBGM(n_components=10, max_iter=1000, random_state=index).fit(x)
            sk_s = time.perf_counter() - start
        row = {"K": k, "D": d, "N": n, "mode": int(posterior.attrs["mode"]),
               "P(true K)": float(posterior.get(k, 0.0)),
               "90% set": posterior.attrs["credible_set"],
               "max R-hat": f"{_invariant(model)['max_r_hat']:.3f}", "warning": flagged,
               "fit_s": fit_s, "BIC": bic, "BIC_s": bic_s,
               "sklearn BGM (>1%)": int((sk.weights_ > 0.01).sum()), "sklearn_s": sk_s,
               "sklearn_s / fit_s": sk_s / fit_s}
        rows.append(row)
        print(row, flush=True)
    right = np.mean([r["mode"] == r["K"] for r in rows])
    summary = (f"- default K answer right: {right:.0%} of {len(rows)} data sets (goal 90%)\n"
               f"- mean P(true K): {np.mean([r['P(true K)'] for r in rows]):.3f} (goal 0.8)\n"
               f"- BIC right: {np.mean([r['BIC'] == r['K'] for r in rows]):.0%}; scikit-learn "
               f"BayesianGaussianMixture (>1% weight) right: "
               f"{np.mean([r['sklearn BGM (>1%)'] == r['K'] for r in rows]):.0%}")
    return markdown_table(rows, list(rows[0])) + "\n\n" + summary


# ---------------------------------------------------------------- consistency

def consistency_data(n: int, seed: int):
    """Three overlapping, elongated 2-D clusters (weights 0.45, 0.35, 0.2)."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [3.0, 0.5], [1.0, 3.0]])
    angles = np.deg2rad([30.0, -40.0, 85.0])
    covariances = []
    for angle in angles:
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        covariances.append(rotation @ np.diag([1.2, 0.12]) @ rotation.T)
    labels = rng.choice(3, n, p=[0.45, 0.35, 0.2])
    rows = np.empty((n, 2))
    for k in range(3):
        mask = labels == k
        rows[mask] = rng.multivariate_normal(means[k], covariances[k], mask.sum())
    return rows


def run_consistency(quick: bool) -> str:
    from bayesgmm import BayesianGaussianMixture

    rows = []
    for n in ((250, 1000) if quick else (250, 1000, 2500, 10_000)):
        x = consistency_data(n, seed=n)
        row = {"n": n}
        for name, prior in (("MFM (default)", "mixture_of_finite_mixtures"),
                            ("DP", "dirichlet_process")):
            model = BayesianGaussianMixture(weight_concentration_prior_type=prior,
                                            random_state=0, progress_bar=False)
            fit_s, _ = _quiet_fit(model, x)
            posterior = model.n_clusters_posterior()
            row[f"{name} P(K+=3)"] = float(posterior.get(3, 0.0))
            row[f"{name} mode"] = int(posterior.attrs["mode"])
            row[f"{name} max R-hat"] = f"{_invariant(model)['max_r_hat']:.3f}"
            row[f"{name} fit_s"] = fit_s
        rows.append(row)
        print(row, flush=True)
    return markdown_table(rows, list(rows[0]))


# ---------------------------------------------------------------- scale

def run_scale(quick: bool) -> str:
    from sklearn.datasets import make_blobs
    from sklearn.mixture import BayesianGaussianMixture as SkBGM

    from bayesgmm import BayesianGaussianMixture

    n = 20_000 if quick else 100_000
    # the VI benchmark's data (benchmarks/bayes.py): its first n training rows
    x, _ = make_blobs(n + 10_000, 8, centers=8, cluster_std=1.5, random_state=0)
    x = x[:n]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkBGM(n_components=20, weight_concentration_prior_type="dirichlet_process",
                   max_iter=500, random_state=0).fit(x)
    sk_s = time.perf_counter() - start
    settings = dict(num_warmup=200, num_samples=100, thinning=2, max_extensions=6)
    model = BayesianGaussianMixture(20, random_state=0, progress_bar=False, **settings)
    fit_s, flagged = _quiet_fit(model, x)
    info = _invariant(model)
    rows = [
        {"fit": "bayesgmm Gibbs, MFM (T=20; 200 warm-up sweeps, 100 draws x thinning 2, "
                "then extensions)", "seconds": fit_s, "vs sklearn": sk_s / fit_s,
         "K answer": f"{info['k_mode']} (P = {info['p_mode']:.2f})",
         "max R-hat": f"{info['max_r_hat']:.3f}", "min ESS": info["min_ess_bulk"],
         "extra draws": model.inference_info_["extra_draws"], "warning": flagged},
        {"fit": "scikit-learn BayesianGaussianMixture (DP, T=20, max_iter=500; anchor)",
         "seconds": sk_s, "vs sklearn": 1.0,
         "K answer": f"{int((sk.weights_ > 0.01).sum())} components > 1%",
         "max R-hat": "", "min ESS": "", "extra draws": "", "warning": ""},
    ]
    print(rows, flush=True)
    return f"N = {n:,}, D = 8, 8 true clusters.\n\n" + markdown_table(rows, list(rows[0]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="all",
                        choices=("faithful", "recovery", "consistency", "scale", "all"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_faithful_child(int(args.child[1]), args.child[0])))
        return
    suites = {"faithful": lambda: run_faithful([0, 1] if args.quick else list(range(10))),
              "recovery": lambda: run_recovery(args.quick),
              "consistency": lambda: run_consistency(args.quick),
              "scale": lambda: run_scale(args.quick)}
    for name, run in suites.items():
        if args.suite in (name, "all"):
            text = run()
            print(text, flush=True)
            if not args.quick:
                write_readme(f"gibbs-{name}", text)


if __name__ == "__main__":
    main()

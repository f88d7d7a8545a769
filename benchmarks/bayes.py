"""Benchmarks of the Bayesian mixture (issue goals in benchmarks/README.md).

    python benchmarks/bayes.py --suite nuts|vi|all [--quick]

nuts  Old Faithful (standardised internally), T=10, 2 chains x (500 warm-up + 500 draws).
      Each run is a fresh process, so compile time is included ("cold"); a second fit in the
      same process shows the time once the programs are compiled ("warm").
spread  the same fit for seeds 0-9 in one process, beside NUTS with the same draws on an iid
      Gaussian of the model's dimension: how often each diagnostic goal is met, and how
      often it is met when the target is ideal.
vi    make_blobs(n + 10_000, 8, centers=8, cluster_std=1.5, random_state=0), last 10k held
      out, T=20, n = 100k, 20k and 1e6, each fit in a fresh process with the compile cache
      off, against sklearn BayesianGaussianMixture (dirichlet_process, max_iter=500) (issue
      #21).
minibatch  examples/minibatch_svi.py on 1e6 simulated rows (6 true clusters, D=4, T=15; the
      automatic stochastic VI), against EM with the true K on the same rows (issues #6, #21).

Results are printed as Markdown and written between the markers in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import cold_env, render_table, write_readme  # noqa: E402


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    return render_table("| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                        ("| " + " | ".join(_format(r.get(c, "")) for c in columns) + " |"
                         for r in rows))


def _nuts_once(seed: int) -> dict:
    from bayesgmm import BayesianGaussianMixture, load_faithful

    data = load_faithful()
    out = {}
    for phase in ("cold", "warm"):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BayesianGaussianMixture(10, method="nuts", random_state=seed,
                                            progress_bar=False).fit(data)
        out[f"{phase}_s"] = time.perf_counter() - start
    out.update(
        _invariant_diagnostics(model),
        mean_steps=float(model.sample_stats_["n_steps"].mean()),
        p_k={int(k): round(float(v), 3) for k, v in model.n_clusters_posterior().items()})
    return out


def _plain_numpyro_once(seed: int) -> dict:
    """The anchor: the same model and data through ``numpyro.infer.MCMC`` as a user would run
    it (vectorised chains, NumPyro's default initialisation, no EM start), fresh process."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    from bayesgmm import load_faithful
    from bayesgmm.engine.bayes.models import ModelSpec, mixture_model

    x = load_faithful().to_numpy()
    y = (x - x.mean(axis=0)) / x.std(axis=0)
    start = time.perf_counter()
    with jax.enable_x64(True):
        mcmc = MCMC(NUTS(mixture_model), num_warmup=500, num_samples=500, num_chains=2,
                    chain_method="vectorized", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(y), ModelSpec(10, 2),
                 extra_fields=("diverging",))
        alpha = np.asarray(mcmc.get_samples(group_by_chain=True)["alpha"])
        divergences = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    elapsed = time.perf_counter() - start
    from bayesgmm.engine.bayes.diagnostics import _arviz
    az = _arviz()
    return {"cold_s": elapsed, "ess_alpha": float(az.ess(alpha)),
            "r_hat_alpha": float(az.rhat(alpha)), "divergences": divergences}


def _invariant_diagnostics(model) -> dict:
    table = model.diagnostics()
    invariant = table.loc[[q for q in ("alpha", "log_likelihood", "n_occupied")
                           if q in table.index]]
    return dict(min_ess_bulk=float(invariant["ess_bulk"].min()),
                ess_bulk={k: round(float(v), 1) for k, v in invariant["ess_bulk"].items()},
                max_r_hat=float(invariant["r_hat"].max()),
                divergences=int(model.sample_stats_["diverging"].sum()))


def _gaussian_ceiling(seed: int, n_dims: int, num_samples: int = 500) -> dict:
    """NUTS with the benchmark's settings on an ideal target, iid N(0, I_d): the ESS and R-hat
    of its log density are what NUTS reaches with 2 x 500 draws when nothing is hard."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from bayesgmm.engine.bayes.diagnostics import _arviz

    def model():
        numpyro.sample("x", dist.Normal(jnp.zeros(n_dims), 1.0).to_event(1))

    mcmc = MCMC(NUTS(model), num_warmup=500, num_samples=num_samples, num_chains=2,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed))
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
    log_density = -0.5 * np.sum(x**2, axis=-1)
    az = _arviz()
    return {"ceiling_ess_bulk": float(az.ess(log_density)),
            "ceiling_r_hat": float(az.rhat(log_density))}


def run_spread(seeds: list[int], num_samples: int = 500) -> str:
    """The benchmark fit for many seeds in one process (compiled once), beside NUTS on an
    iid Gaussian of the model's dimension with the same draws: how often each goal is met."""
    from bayesgmm import BayesianGaussianMixture, load_faithful
    from bayesgmm.engine.bayes.inference import latent_constraints

    data = load_faithful()
    rows = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BayesianGaussianMixture(10, method="nuts", random_state=seed,
                                            progress_bar=False, num_samples=num_samples).fit(data)
        if not rows:
            spec = model.model_spec_
            n_dims = sum(int(np.prod(_unconstrained_shape(c, shape)))
                         for c, shape in latent_constraints(spec).values())
        row = {"seed": seed, **_invariant_diagnostics(model),
               **_gaussian_ceiling(seed, n_dims, num_samples)}
        rows.append(row)
        print(row, flush=True)
    met = {
        "ess_bulk >= 400 (mixture, every invariant quantity)":
            sum(r["min_ess_bulk"] >= 400 for r in rows),
        "r_hat <= 1.01 (mixture)": sum(r["max_r_hat"] <= 1.01 for r in rows),
        "0 divergences (mixture)": sum(r["divergences"] == 0 for r in rows),
        "ess_bulk >= 400 (iid Gaussian log density)":
            sum(r["ceiling_ess_bulk"] >= 400 for r in rows),
        "r_hat <= 1.01 (iid Gaussian log density)": sum(r["ceiling_r_hat"] <= 1.01 for r in rows),
    }
    columns = ["seed", "min_ess_bulk", "ess_bulk", "max_r_hat", "divergences",
               "ceiling_ess_bulk", "ceiling_r_hat"]
    summary = "\n".join(f"- {goal}: {count} of {len(rows)} seeds" for goal, count in met.items())
    rows = [{**r, **{k: f"{r[k]:.3f}" for k in ("max_r_hat", "ceiling_r_hat")}} for r in rows]
    return (f"Ideal-target ceiling: NUTS (`numpyro.infer.MCMC`, 2 vectorised chains x (500 + "
            f"{num_samples})) on iid N(0, I_{n_dims}), the model's unconstrained dimension, same "
            f"seeds.\n\n"
            + markdown_table(rows, columns) + "\n\n" + summary)


def _unconstrained_shape(constraint, shape: tuple) -> tuple:
    from numpyro.distributions.transforms import biject_to
    return biject_to(constraint).inverse_shape(shape)


def run_nuts(seeds: list[int]) -> list[dict]:
    rows = []
    for seed in seeds:
        result = subprocess.run([sys.executable, __file__, "--nuts-child", str(seed)],
                                capture_output=True, text=True, check=True, env=cold_env())
        record = json.loads(result.stdout.strip().splitlines()[-1])
        record["seed"] = seed
        rows.append(record)
        print(record, flush=True)
    return rows


#: The cases of the VI benchmark (issue #21): (name, rows, what). Each runs in a fresh
#: process with the persistent compile cache off, so compilation is included.
VI_CASES = {
    "sklearn": "sklearn BayesianGaussianMixture (DP, max_iter=500)",
    "vi": "bayesgmm BayesianGaussianMixture(method='vi') (default)",
    "vi_minibatch": "bayesgmm method='vi', subsample_size=10,000 (stochastic VI)",
    "dropin": "bayesgmm VariationalGaussianMixture (scikit-learn's settings)",
    "vi_warm": "bayesgmm method='vi', second process with the compile cache on (default)",
    "em_true_k": "bayesgmm GaussianMixture(8) (EM with the true K)",
    "sklearn_20_iter": "sklearn BayesianGaussianMixture, 20 iterations (time per iteration)",
}


def _plug_in_loglik(weights, means, covariances, x) -> float:
    """Mean log density of ``x`` under the mixture with these parameters (full covariances)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    log_prob = np.stack([np.log(max(w, 1e-300)) + multivariate_normal(m, c).logpdf(x)
                         for w, m, c in zip(weights, means, covariances, strict=True)], axis=1)
    return float(logsumexp(log_prob, axis=1).mean())


def _vi_once(case: str, n_train: int) -> dict:
    """One fit of ``case`` on the first ``n_train`` rows of the blobs (the last 10,000 of
    ``n_train + 10,000`` held out): timed fit, then its scores (not timed)."""
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    x, y = make_blobs(n_train + 10_000, 8, centers=8, cluster_std=1.5, random_state=0)
    train, labels, test = x[:n_train], y[:n_train], x[n_train:]
    record: dict = {"rows": n_train}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.startswith("sklearn"):
            from sklearn.mixture import BayesianGaussianMixture as SkBGM
            model = SkBGM(n_components=20, weight_concentration_prior_type="dirichlet_process",
                          max_iter=20 if case == "sklearn_20_iter" else 500,
                          random_state=0).fit(train)
        elif case == "dropin":
            from bayesgmm import VariationalGaussianMixture
            model = VariationalGaussianMixture(n_components=20, max_iter=500,
                                               random_state=0).fit(train)
        elif case == "em_true_k":
            from bayesgmm import GaussianMixture
            model = GaussianMixture(8, random_state=0).fit(train)
        else:
            from bayesgmm import BayesianGaussianMixture
            options = {"subsample_size": 10_000} if case == "vi_minibatch" else {}
            model = BayesianGaussianMixture(20, method="vi", random_state=0,
                                            progress_bar=False, **options).fit(train)
        record["fit_s"] = time.perf_counter() - start
    covariances = (model.full_covariances() if hasattr(model, "full_covariances")
                   and case != "vi" and case != "vi_minibatch" else model.covariances_)
    if np.ndim(covariances) == 2:
        covariances = np.broadcast_to(covariances, (len(model.weights_), 8, 8))
    record["ari"] = adjusted_rand_score(labels, model.predict(train))
    record["components_over_1pct"] = int((model.weights_ > 0.01).sum())
    plug_in = _plug_in_loglik(model.weights_, model.means_, covariances, test)
    record["heldout_plugin"] = f"{plug_in:.4f}"
    record["n_iter"] = getattr(model, "n_iter_", None)
    if case.startswith("vi"):
        info = model.inference_info_
        record.update(n_iter=info["n_iter"], algorithm=info["algorithm"],
                      converged=info["converged"],
                      heldout_predictive=f"{model.score(test):.4f}")
        start = time.perf_counter()
        posterior = model.n_clusters_posterior()
        record["p_k_mode"] = f"{posterior.attrs['mode']} ({posterior.max():.2f})"
        record["summary_s"] = time.perf_counter() - start
    else:
        record["converged"] = bool(getattr(model, "converged_", True))
    return record


def _vi_child(case: str, n_train: int) -> dict:
    """``case`` in a fresh process: cold (compile cache off), or for ``vi_warm`` the second
    of two processes sharing a fresh compile cache (what a user's second session sees)."""
    command = [sys.executable, __file__, "--vi-child", case.removesuffix("_warm"),
               str(n_train)]
    env = cold_env()
    with tempfile.TemporaryDirectory() as cache:
        if case == "vi_warm":
            env["BAYESGMM_COMPILE_CACHE"] = cache
            subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record["case"] = VI_CASES[case]
    print(record, flush=True)
    return record


def run_vi(quick: bool) -> str:
    """Fresh-process timings (compile included) at 100k x 8 (20k with ``--quick``), 20k x 8
    and 1e6 x 8 of the issue's blobs, each size with its same-run anchor."""
    sizes = [20_000] if quick else [100_000, 20_000, 1_000_000]
    tables = []
    columns = ["case", "fit_s", "speed-up vs sklearn", "ari", "components_over_1pct",
               "heldout_plugin", "heldout_predictive", "converged", "n_iter", "p_k_mode",
               "summary_s"]
    for n_train in sizes:
        if n_train >= 1_000_000:  # scikit-learn's 500 iterations would take about half an hour
            cases = ["sklearn_20_iter", "em_true_k", "vi"]
        elif n_train == 100_000:
            cases = ["sklearn", "vi", "vi_warm", "vi_minibatch", "dropin", "em_true_k"]
        else:
            cases = ["sklearn", "vi", "vi_warm"]
        rows = [_vi_child(case, n_train) for case in cases]
        anchor = rows[0]
        for row in rows:
            row["speed-up vs sklearn"] = anchor["fit_s"] / row["fit_s"]
        if anchor["case"] == VI_CASES["sklearn_20_iter"]:
            per_iter = anchor["fit_s"] / 20
            for row in rows:
                row["speed-up vs sklearn"] = (f"{500 * per_iter / row['fit_s']:.3g} "
                                              "(vs 500 x its s/iteration)")
        tables.append(f"**{n_train:,} x 8** (held out: 10,000 rows)\n\n"
                      + markdown_table(rows, columns))
    return "\n\n".join(tables)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", choices=("nuts", "spread", "vi", "minibatch", "all"),
                        default="all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--num-samples", type=int, default=500,
                        help="draws per chain for --suite spread (the README table: 500)")
    parser.add_argument("--nuts-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plain-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vi-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vi_child is not None:
        print(json.dumps(_vi_once(args.vi_child[0], int(args.vi_child[1]))))
        return
    if args.nuts_child is not None:
        print(json.dumps(_nuts_once(args.nuts_child)))
        return
    if args.plain_child is not None:
        print(json.dumps(_plain_numpyro_once(args.plain_child)))
        return
    if args.suite in ("nuts", "all"):
        rows = run_nuts([0] if args.quick else [0, 1, 2])
        anchor = json.loads(subprocess.run(
            [sys.executable, __file__, "--plain-child", "0"], capture_output=True, text=True,
            check=True, env=cold_env()).stdout.strip().splitlines()[-1])
        print("anchor", anchor, flush=True)
        for row in rows:
            row["cold speed-up vs plain MCMC"] = anchor["cold_s"] / row["cold_s"]
        columns = ["seed", "cold_s", "warm_s", "cold speed-up vs plain MCMC", "min_ess_bulk",
                   "ess_bulk", "max_r_hat", "divergences", "mean_steps", "p_k"]
        text = (f"Anchor, same run: plain `numpyro.infer.MCMC` on the same model (vectorised "
                f"chains, default init), fresh process: {anchor['cold_s']:.1f} s, "
                f"ESS(alpha) {anchor['ess_alpha']:.0f}, R-hat(alpha) "
                f"{anchor['r_hat_alpha']:.3f}, {anchor['divergences']} divergences.\n\n"
                + markdown_table(rows, columns))
        print(text)
        if not args.quick:
            write_readme("bayes-nuts", text)
    if args.suite in ("spread", "all"):
        text = run_spread(list(range(3 if args.quick else 10)), args.num_samples)
        print(text)
        if not args.quick and args.num_samples == 500:
            write_readme("bayes-nuts-spread", text)
    if args.suite in ("vi", "all"):
        text = run_vi(args.quick)
        print(text)
        if not args.quick:
            write_readme("bayes-vi", text)
    if args.suite in ("minibatch", "all"):
        text = run_minibatch(100_000 if args.quick else 1_000_000)
        print(text)
        if not args.quick:
            write_readme("bayes-minibatch", text)


def run_minibatch(n_rows: int) -> str:
    sys.path.insert(0, str(HERE.parent / "examples"))
    from minibatch_svi import run

    r = run(n_rows)
    print(r, flush=True)
    lines = [
        f"| bayesgmm VI (automatic: stochastic, 10,000 rows/step) | {r['rows']:,} | "
        f"{r['fit_s']:.0f} | "
        f"{r['fit_s'] / r['em_true_k_s']:.1f}x | "
        f"{r['steps']} ({'converged' if r['converged'] else 'max_steps'}) | "
        f"{r['summaries_s']:.0f} | {r['ari']:.3f} | {r['components_over_1pct']} | "
        f"{r['p_k_mode']} | {r['heldout_loglik']:.3f} |",
        f"| EM with the true K=6 (anchor) | {r['rows']:,} | {r['em_true_k_s']:.0f} | 1.0x | | | "
        f"{r['em_true_k_ari']:.3f} | 6 | | {r['em_true_k_heldout_loglik']:.3f} |",
    ]
    return render_table(
        "| fit | rows | fit (s) | fit time vs anchor | steps | summaries over all rows (s) | "
        "ARI vs truth | components > 1% | posterior mode of K (probability) | "
        "held-out log-lik per row |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|", lines)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()

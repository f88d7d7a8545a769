"""Benchmarks against scikit-learn (the anchor) and gmmx; see benchmarks/README.md.

Usage::

    make bench                                  # everything; rewrites the tables in README.md
    .venv/bin/python benchmarks/run.py --suite em --quick   # smaller EM grid, prints only

Suites: ``em`` (time per EM iteration, issue #2) and ``sweep`` (model selection over the
default grid, issue #3).

Protocol (issue #2): full covariance, the same initial parameters for every library (from a
k-means fit on a subsample), ``tol=0`` so that exactly ``n_iter`` iterations run. "first" is
the first call in a fresh process for that shape and dtype, compile included; "steady" is the
best of ``--repeats`` further calls. bayesgmm is timed end to end through
``GaussianMixture.fit`` (validation, centring, blocking and the final degeneracy check
included). Ratios are ``anchor time / library time`` against scikit-learn float64 at the same
(N, D, K), measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGMM

from bayesgmm import GaussianMixture, load_faithful
from bayesgmm.core.covariance import get_family
from bayesgmm.engine.preprocessing import compute_context
from bayesgmm.engine.sweep import AUTO_SCREEN_ROWS

HERE = Path(__file__).parent
README = HERE / "README.md"

FULL_GRID = [(10_000, 8, 8), (100_000, 8, 8), (1_000_000, 8, 8), (100_000, 32, 16)]
QUICK_GRID = [(10_000, 8, 8), (100_000, 8, 8)]


def make_problem(n: int, d: int, k: int, seed: int = 0):
    """Data from a random K-component mixture and a shared k-means-based start.

    Each component has a random orientation and variances uniform in [0.1, 1] (condition
    number <= 10); centres are N(0, 4^2) per coordinate.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    rotations = np.linalg.qr(rng.normal(size=(k, d, d)))[0]
    factors = rotations * np.sqrt(rng.uniform(0.1, 1.0, size=(k, 1, d)))
    labels = rng.integers(k, size=n)
    x = centres[labels] + np.einsum("nij,nj->ni", factors[labels], rng.normal(size=(n, d)))
    sub = x[rng.choice(n, size=min(n, 20_000), replace=False)]
    km = KMeans(k, n_init=1, random_state=seed).fit(sub)
    means = km.cluster_centers_
    weights = np.bincount(km.labels_, minlength=k) / len(sub)
    covs = np.stack([np.cov(sub[km.labels_ == j].T) + 1e-3 * np.eye(d) for j in range(k)])
    return x, weights, means, covs


def time_calls(fn, repeats: int) -> tuple[float, float]:
    """(first call seconds, best of ``repeats`` later calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    steady = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        steady.append(time.perf_counter() - start)
    return first, min(steady)


def _bench_estimator(make_model, x, weights, means, covs, n_iter, repeats):
    """Time ``make_model(**init).fit(x)`` from the shared start, exactly ``n_iter`` iterations."""
    init = dict(weights_init=weights, means_init=means, precisions_init=np.linalg.inv(covs))

    def run():
        model = make_model(len(weights), tol=0.0, max_iter=n_iter, **init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x)
        assert model.n_iter_ == n_iter

    return time_calls(run, repeats)


def bench_bayesgmm(x, weights, means, covs, dtype, n_iter, repeats):
    return _bench_estimator(partial(GaussianMixture, dtype=dtype), x, weights, means, covs,
                            n_iter, repeats)


def bench_sklearn(x, weights, means, covs, dtype, n_iter, repeats):
    return _bench_estimator(SklearnGMM, x.astype(dtype), weights, means, covs, n_iter, repeats)


def bench_gmmx(x, weights, means, covs, dtype, n_iter, repeats):
    from gmmx import EMFitter, GaussianMixtureModelJax

    def run():
        with jax.enable_x64(False):
            data = jnp.asarray(x, dtype)
            gmm = GaussianMixtureModelJax.from_squeezed(
                means=jnp.asarray(means, dtype), covariances=jnp.asarray(covs, dtype),
                weights=jnp.asarray(weights, dtype))
            result = EMFitter(tol=0.0, max_iter=n_iter).fit(data, gmm)
            jax.block_until_ready(result.gmm.means)
            assert int(result.n_iter) == n_iter

    return time_calls(run, repeats)


#: sklearn is the float64 anchor only; gmmx 0.7 checks for float32 and rejects float64.
UNSUPPORTED = {("sklearn", "float32"), ("gmmx", "float64")}

LIBRARIES = {"bayesgmm": bench_bayesgmm, "sklearn": bench_sklearn, "gmmx": bench_gmmx}


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"jax {jax.__version__}, numpy {np.__version__}, "
            f"scikit-learn {sys.modules['sklearn'].__version__}")


def run_grid(grid, dtypes, n_iter, sklearn_iter, repeats, libraries):
    rows = []
    for n, d, k in grid:
        x, weights, means, covs = make_problem(n, d, k)
        anchor = None
        for dtype in dtypes:
            for name in libraries:
                if (name, dtype) in UNSUPPORTED:
                    continue
                iters = n_iter if name == "bayesgmm" else sklearn_iter(n, d, k)
                first, steady = LIBRARIES[name](x, weights, means, covs, dtype, iters,
                                                repeats if name != "sklearn" else 1)
                row = dict(n=n, d=d, k=k, dtype=dtype, library=name, n_iter=iters,
                           first_ms=1e3 * first / iters, steady_ms=1e3 * steady / iters)
                if name == "sklearn":
                    anchor = row["steady_ms"]
                row["ratio"] = anchor / row["steady_ms"] if anchor else float("nan")
                rows.append(row)
                print(f"N={n:>9,} D={d:>2} K={k:>2} {dtype:7s} {name:8s} "
                      f"first {row['first_ms']:9.2f} ms/iter  steady {row['steady_ms']:9.2f} "
                      f"ms/iter  x{row['ratio']:.1f}", flush=True)
    return rows


def render_table(header: str, align: str, lines) -> str:
    """A Markdown table from its header row, its alignment row and its body rows."""
    return "\n".join([header, align, *lines])


def markdown_table(rows) -> str:
    return render_table(
        "| N | D | K | dtype | library | iterations | first call (ms/iter, with compile) "
        "| steady (ms/iter) | speed-up vs sklearn float64 |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|",
        (f"| {r['n']:,} | {r['d']} | {r['k']} | {r['dtype']} | {r['library']} | {r['n_iter']} "
         f"| {r['first_ms']:.2f} | {r['steady_ms']:.2f} | {r['ratio']:.1f}x |" for r in rows))


def write_readme(name: str, table: str) -> None:
    """Replace the block between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = (f"{begin}\nMeasured {dt.date.today().isoformat()} on {machine_description()}.\n\n"
             f"{table}\n{end}")
    text = README.read_text()
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text,
                  flags=re.DOTALL)
    README.write_text(text)


SWEEP_PROBLEMS = {
    "272 x 2 (Old Faithful)": lambda: load_faithful().to_numpy(),
    "10,000 x 8": lambda: make_problem(10_000, 8, 4, seed=1)[0],
    "100,000 x 8": lambda: make_problem(100_000, 8, 4, seed=2)[0],
}
SWEEP_TYPES = ("spherical", "diag", "tied", "full")


def sklearn_sweep(x, ks, n_init):
    """The same grid as a Python loop of scikit-learn fits; BIC picks the model."""
    best = (np.inf, None)
    for covariance_type in SWEEP_TYPES:
        for k in ks:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = SklearnGMM(k, covariance_type=covariance_type, n_init=n_init,
                                   random_state=0).fit(x)
            best = min(best, (model.bic(x), (covariance_type, k, model)), key=lambda b: b[0])
    return best[1]


def run_sweeps(ks=range(1, 10), n_init=5):
    """The default grid by select_model (default screening) and by a scikit-learn loop; on
    the largest data also select_model fitting every restart on all rows (screen_rows=None),
    against the same scikit-learn time. Each select_model runs in a fresh process, so that
    its time includes every compilation it needs."""
    rows = []
    for label, make in SWEEP_PROBLEMS.items():
        x = make()
        variants = [(label, "auto")]
        if len(x) > 2 * AUTO_SCREEN_ROWS:
            variants.append((f"{label}, every restart on all rows (`screen_rows=None`)", None))
        ours = [(name, *_time_sweep(label, ks, n_init, screen)) for name, screen in variants]
        start = time.perf_counter()
        sk_type, sk_k, sk_model = sklearn_sweep(x, ks, n_init)
        theirs = time.perf_counter() - start
        sk_collapsed = bool(np.linalg.eigvalsh(_as_full(sk_model)).min()
                            <= 2 * sk_model.reg_covar)
        sk_pick = f"{sk_type} K={sk_k}" + (" (collapsed)" if sk_collapsed else "")
        for name, seconds, pick in ours:
            rows.append(dict(problem=name, ours=seconds, sklearn=theirs,
                             ratio=theirs / seconds, ours_pick=pick, sk_pick=sk_pick))
            print(f"{name:24s} bayesgmm {seconds:8.1f} s  sklearn loop {theirs:8.1f} s  "
                  f"x{theirs / seconds:.1f}  picks: {pick} / {sk_pick}", flush=True)
    return rows


_SWEEP_CHILD = """
import json, sys, time, warnings
sys.path.insert(0, {here!r})
from run import SWEEP_PROBLEMS
from bayesgmm import select_model
x = SWEEP_PROBLEMS[{label!r}]()
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    best = select_model(x, n_components={ks!r}, n_init={n_init}, random_state=0,
                        screen_rows={screen!r}).best_
print(json.dumps([time.perf_counter() - start,
                  f"{{best.covariance_type}} K={{best.n_components}}"]))
"""


def cold_env() -> dict:
    """The environment for a "cold" child process: no persistent compile cache (bayesgmm's is
    on by default, JAX's may be configured by the environment)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["BAYESGMM_COMPILE_CACHE"] = "off"
    return env


def _time_sweep(label, ks, n_init, screen_rows) -> tuple[float, str]:
    """Wall time of select_model on a sweep problem in a fresh process (data made before
    the clock starts, compilation included) and the model it selects."""
    import json
    import subprocess

    code = _SWEEP_CHILD.format(here=str(HERE), label=label, ks=list(ks), n_init=n_init,
                               screen=screen_rows)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=cold_env()).stdout
    seconds, pick = json.loads(out.strip().splitlines()[-1])
    return seconds, pick


def _as_full(model) -> np.ndarray:
    """A scikit-learn model's covariances as (K, D, D), by bayesgmm's family objects."""
    k, d = model.means_.shape
    with compute_context(np.float64):
        return np.asarray(get_family(model.covariance_type).as_full(
            jnp.asarray(model.covariances_), k, d))


def sweep_table(rows) -> str:
    return render_table(
        "| data | bayesgmm `select_model` (s, compile included) | scikit-learn loop (s) "
        "| speed-up | bayesgmm picks | scikit-learn loop picks |",
        "|---|---:|---:|---:|---|---|",
        (f"| {r['problem']} | {r['ours']:.1f} | {r['sklearn']:.1f} | {r['ratio']:.1f}x | "
         f"{r['ours_pick']} | {r['sk_pick']} |" for r in rows))


def run_missing(n=100_000, d=8, k=8, rate=0.2, n_iter=50, repeats=3):
    """EM time per iteration with ``rate`` of the values missing (MCAR) against complete
    data, same rows and start, float64 and float32 (issue #7)."""
    x, weights, means, covs = make_problem(n, d, k)
    holes = x.copy()
    holes[np.random.default_rng(1).random(x.shape) < rate] = np.nan
    holes = holes[~np.isnan(holes).all(axis=1)]
    n_patterns = len(np.unique(np.isnan(holes), axis=0))
    rows = []
    for dtype in ("float64", "float32"):
        for label, data, missing in (("complete", x, "error"),
                                     (f"{rate:.0%} missing", holes, "marginalize")):
            first, steady = _bench_estimator(
                partial(GaussianMixture, dtype=dtype, missing=missing), data, weights, means,
                covs, n_iter, repeats)
            rows.append({"data": label, "dtype": dtype, "n_iter": n_iter,
                         "first": 1e3 * first / n_iter, "steady": 1e3 * steady / n_iter})
        rows[-1]["ratio"] = rows[-1]["steady"] / rows[-2]["steady"]
        rows[-2]["ratio"] = 1.0
        print(rows[-2], rows[-1], flush=True)
    header = (f"N={n:,}, D={d}, K={k}, full covariance; "
              f"{n_patterns} distinct missingness patterns.\n\n")
    lines = [f"| {r['data']} | {r['dtype']} | {r['n_iter']} | {r['first']:.2f} | "
             f"{r['steady']:.2f} | {r['ratio']:.1f}x |" for r in rows]
    return header + render_table(
        "| data | dtype | iterations | first call (ms/iter, with compile) | steady (ms/iter) | "
        "cost vs complete, same dtype |", "|---|---|---:|---:|---:|---:|", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=("all", "em", "sweep", "missing"), default="all")
    parser.add_argument("--quick", action="store_true", help="small EM grid; README untouched")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--libraries", default="sklearn,bayesgmm,gmmx")
    args = parser.parse_args()

    if args.suite in ("all", "em"):
        def sklearn_iter(n, d, k):  # fewer iterations where sklearn/gmmx take minutes
            return 100 if n * d * d * k <= 100_000 * 8 * 8 * 8 else 10

        grid = QUICK_GRID if args.quick else FULL_GRID
        rows = run_grid(grid, ("float64", "float32"), 100, sklearn_iter, args.repeats,
                        args.libraries.split(","))
        print()
        print(markdown_table(rows))
        if not args.quick:
            write_readme("em-iteration", markdown_table(rows))
    if args.suite in ("all", "sweep"):
        rows = run_sweeps()
        print()
        print(sweep_table(rows))
        if not args.quick:
            write_readme("sweep", sweep_table(rows))
    if args.suite in ("all", "missing"):
        table = run_missing(repeats=args.repeats)
        print()
        print(table)
        if not args.quick:
            write_readme("missing", table)


if __name__ == "__main__":
    main()

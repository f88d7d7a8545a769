"""How EM's time per iteration grows with N, K and D (issue #6), bayesgmm against scikit-learn.

    python benchmarks/scaling.py [--quick]

Three sweeps around N=1e5, D=8, K=8 (full covariance): N from 1e3 to 1e7, K from 2 to 32 and D
from 2 to 32, the other two held at their centre values. Every library starts from the same
parameters (``benchmarks/run.py``'s k-means start) and runs with ``tol=0``.

Time per iteration is a difference of two warm fits, ``(t(many) - t(few)) / (many - few)``
(each the best of three; about 2 s of difference for bayesgmm), so that input checks,
blocking, feature construction and the final degeneracy check (paid once per fit) are not
counted as iteration time; every program is compiled before timing.
The slope of log(time per iteration) against log(N) over N >= 1e5 is the exponent of the
cost in N (1 for linear). Rewrites the ``scaling`` table of ``benchmarks/README.md`` and
``benchmarks/scaling.png`` (the numbers also go to ``benchmarks/scaling.json``; ``--replot``
redraws from them); ``--quick`` stops at N=1e6 and only prints.

Data of 1e7 rows would need 5 GB to draw in one go, so rows are drawn a million at a time:
larger data sets repeat one million drawn rows in fresh random orders (the cost of an
iteration does not depend on which rows they are).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    GaussianMixture,
    SklearnGMM,
    machine_description,
    make_problem,
    render_table,
    write_readme,
)

CENTRE = {"n": 100_000, "d": 8, "k": 8}
SWEEPS = {
    "n": [1_000, 10_000, 100_000, 1_000_000, 10_000_000],
    "k": [2, 4, 8, 16, 32],
    "d": [2, 4, 8, 16, 32],
}
#: (library, dtype) pairs timed at every point.
SERIES = [("bayesgmm", "float64"), ("bayesgmm", "float32"), ("sklearn", "float64")]
DRAW_ROWS = 1_000_000
RESULTS = HERE / "scaling.json"


def problem(n: int, d: int, k: int):
    """Rows and the shared start (see module docstring for N > 1e6)."""
    x, weights, means, covs = make_problem(min(n, DRAW_ROWS), d, k)
    if n > DRAW_ROWS:
        rng = np.random.default_rng(1)
        x = np.concatenate([x[rng.permutation(DRAW_ROWS)][:min(DRAW_ROWS, n - start)]
                            for start in range(0, n, DRAW_ROWS)])
    return x, weights, means, covs


def iteration_counts(library: str, n: int, d: int, k: int) -> tuple[int, int]:
    """(few, many) iterations, so that the timed difference is about 2 s of bayesgmm work or
    0.2 s of scikit-learn work per (N K D^2 / 2) (at least 10 (bayesgmm) or 2 (scikit-learn)
    and at most 200 iterations)."""
    work = n * k * (d + d * (d + 1) / 2)
    budget = 2e9 if library == "bayesgmm" else 2e8
    # at least 10 bayesgmm iterations: a fit's fixed cost at 1e7 rows varies by ~1 s
    extra = int(np.clip(budget / work, 10 if library == "bayesgmm" else 2, 200))
    return (1, 1 + extra) if library == "sklearn" else (5, 5 + extra)


def time_fit(library: str, dtype: str, x, weights, means, covs, n_iter: int) -> float:
    init = dict(weights_init=weights, means_init=means, precisions_init=np.linalg.inv(covs))
    if library == "bayesgmm":
        model = GaussianMixture(len(weights), tol=0.0, max_iter=n_iter, dtype=dtype, **init)
    else:
        model = SklearnGMM(len(weights), tol=0.0, max_iter=n_iter, **init)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x)
    assert model.n_iter_ == n_iter
    return time.perf_counter() - start


def per_iteration(library: str, dtype: str, data, n: int, d: int, k: int) -> float:
    """Seconds per iteration by the two-fit difference (both warm), each fit the best of
    three (one at N > 1e6)."""
    few, many = iteration_counts(library, n, d, k)
    if library == "bayesgmm":  # compile both programs (max_iter is part of a program's shape)
        time_fit(library, dtype, *data, few)
        time_fit(library, dtype, *data, many)
    repeats = 1 if n > 1_000_000 else 3
    short = min(time_fit(library, dtype, *data, few) for _ in range(repeats))
    long = min(time_fit(library, dtype, *data, many) for _ in range(repeats))
    return max(long - short, 1e-9) / (many - few)


def run(quick: bool) -> list[dict]:
    rows = []
    for axis, values in SWEEPS.items():
        for value in values:
            if quick and axis == "n" and value > 1_000_000:
                continue
            size = {**CENTRE, axis: value}
            data = problem(size["n"], size["d"], size["k"])
            for library, dtype in SERIES:
                seconds = per_iteration(library, dtype, data, **size)
                rows.append({"axis": axis, **size, "library": library, "dtype": dtype,
                             "ms": 1e3 * seconds})
                print(f"{axis}: N={size['n']:>10,} D={size['d']:>2} K={size['k']:>2} "
                      f"{library:8s} {dtype}: {1e3 * seconds:10.3f} ms/iter", flush=True)
    return rows


def slope_in_n(rows, library: str, dtype: str) -> float:
    """Exponent of N fitted over N >= 1e5 (log-log least squares)."""
    points = [(r["n"], r["ms"]) for r in rows
              if r["axis"] == "n" and r["library"] == library and r["dtype"] == dtype
              and r["n"] >= 100_000]
    n, ms = np.log(np.array(points)).T
    return float(np.polyfit(n, ms, 1)[0])


def table(rows) -> str:
    anchor = {(r["axis"], r["n"], r["d"], r["k"]): r["ms"] for r in rows
              if r["library"] == "sklearn"}
    lines = [f"| {r['axis'].upper()} | {r['n']:,} | {r['d']} | {r['k']} | {r['library']} | "
             f"{r['dtype']} | {r['ms']:.3f} | "
             f"{anchor[(r['axis'], r['n'], r['d'], r['k'])] / r['ms']:.1f}x |" for r in rows]
    return render_table(
        "| sweep | N | D | K | library | dtype | ms per iteration | speed-up vs sklearn |",
        "|---|---:|---:|---:|---|---|---:|---:|", lines)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, axis in zip(axes, SWEEPS, strict=True):
        for library, dtype in SERIES:
            points = [(r[axis], r["ms"]) for r in rows if r["axis"] == axis
                      and r["library"] == library and r["dtype"] == dtype]
            ax.loglog(*np.array(points).T, "o-", label=f"{library} {dtype}")
        fixed = ", ".join(f"{a.upper()}={CENTRE[a]:,}" for a in CENTRE if a != axis)
        ax.set(xlabel=axis.upper(), ylabel="ms per EM iteration", title=f"{fixed}")
        if axis != "n":
            ax.set_xscale("log", base=2)
            ax.set_xticks(SWEEPS[axis], [str(v) for v in SWEEPS[axis]])
            ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
    if len({r["n"] for r in rows if r["axis"] == "n"}) > 1:
        n = np.array(sorted({r["n"] for r in rows if r["axis"] == "n"}), float)
        ref = next(r["ms"] for r in rows if r["axis"] == "n" and r["library"] == "sklearn"
               and r["n"] == n[-1])
        axes[0].loglog(n, ref * n / n[-1], "k:", label="linear in N")
    axes[0].legend(fontsize=8)
    fig.suptitle("EM time per iteration, full covariance (benchmarks/scaling.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replot", action="store_true",
                        help="redraw scaling.png from scaling.json (the last full run)")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(RESULTS.read_text()), HERE / "scaling.png")
        return
    rows = run(args.quick)
    slopes = {f"{library} {dtype}": slope_in_n(rows, library, dtype)
              for library, dtype in SERIES}
    text = table(rows) + "\n\nExponent of N over N >= 1e5 (1 = linear): " + ", ".join(
        f"{name} {slope:.2f}" for name, slope in slopes.items()) + "."
    print(machine_description())
    print(text)
    if not args.quick:
        RESULTS.write_text(json.dumps(rows, indent=1))
        plot(rows, HERE / "scaling.png")
        write_readme("scaling", text)


if __name__ == "__main__":
    main()

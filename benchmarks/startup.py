"""The first call: time from a fresh process to an answer, with an empty and a warm compile
cache, against scikit-learn doing the same work (issue #22).

Usage: ``.venv/bin/python benchmarks/startup.py [--repeats 3] [--quick]``

Every case is a whole fresh Python process, timed from outside (``perf_counter`` around
``subprocess.run``), the median of ``--repeats`` runs:

* ``import``: ``python -c "import bayesgmm"``, and the in-process time of the import alone;
* ``workflow``: ``import bayesgmm; select_model(X); GaussianMixture(3, "tied").fit(X)`` on Old
  Faithful (272 x 2) and on 10,000 x 8, with an empty cache folder (each run a new one) and
  with a warm one (the same folder, filled by a first run that is not timed); the anchor is the
  same grid (K 1-9 x 4 covariance types, ``n_init=5``, BIC) and the tied fit with
  scikit-learn in a loop, in the same run;
* ``bayes``: the default ``BayesianGaussianMixture`` fit on Old Faithful, empty and warm cache;
* ``fit 1e5``: ``GaussianMixture(8, init_params="random_from_data", max_iter=20, tol=0)`` end
  to end at 100,000 x 8, best of 3 fits after a first (compiling) one, in one process, against
  scikit-learn's best of 3.

Writes the table between ``<!-- startup:begin -->`` and ``<!-- startup:end -->`` in
``benchmarks/README.md`` (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bayes import markdown_table  # noqa: E402
from run import write_readme  # noqa: E402

DATA = {
    "Old Faithful": "import bayesgmm\nX = bayesgmm.load_faithful().to_numpy()",
    "10,000 x 8": ("import numpy as np\nfrom sklearn.datasets import make_blobs\n"
                   "X = make_blobs(10_000, 8, centers=4, cluster_std=2.0, random_state=1)[0]"),
}

OURS = """
{data}
import bayesgmm
selection = bayesgmm.select_model(X, random_state=0)
bayesgmm.GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
"""

THEIRS = """
{data}
import warnings
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
best = None
for covariance_type in ("spherical", "diag", "tied", "full"):
    for k in range(1, 10):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = GaussianMixture(k, covariance_type=covariance_type, n_init=5,
                                    random_state=0).fit(X)
        bic = model.bic(X)
        best = bic if best is None else min(best, bic)
GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
"""

BAYES = """
import bayesgmm
bayesgmm.BayesianGaussianMixture(random_state=0, progress_bar=False).fit(
    bayesgmm.load_faithful())
"""

IMPORT = """
import time
start = time.perf_counter()
import bayesgmm
print(time.perf_counter() - start)
"""

FIT_1E5 = """
import json, time, warnings
import numpy as np
from sklearn.datasets import make_blobs
X = make_blobs(100_000, 8, centers=8, cluster_std=1.5, random_state=0)[0]
def best_of(make, repeats=3):
    make().fit(X)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        make().fit(X)
        times.append(time.perf_counter() - start)
    return min(times)
settings = dict(init_params="random_from_data", max_iter=20, tol=0.0, random_state=0)
import bayesgmm
from sklearn.mixture import GaussianMixture
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ours = best_of(lambda: bayesgmm.GaussianMixture(8, **settings))
    theirs = best_of(lambda: GaussianMixture(8, **settings))
print(json.dumps([ours, theirs]))
"""


def run(script: str, cache: str | None) -> tuple[float, str]:
    """Seconds for a whole fresh process running ``script``, and its standard output."""
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["BAYESGMM_COMPILE_CACHE"] = cache if cache is not None else "off"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return seconds, done.stdout


def empty_and_warm(script: str, repeats: int) -> tuple[float, float]:
    """Median seconds with an empty cache folder (a new one each run) and with a warm one."""
    empty, warm = [], []
    with tempfile.TemporaryDirectory() as root:
        for i in range(repeats):
            empty.append(run(script, f"{root}/empty{i}")[0])
        run(script, f"{root}/warm")  # fills it, not timed
        for _ in range(repeats):
            warm.append(run(script, f"{root}/warm")[0])
    return statistics.median(empty), statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    rows = []
    imports = [run(IMPORT, None) for _ in range(max(repeats, 3))]
    rows.append({"case": "`import bayesgmm` (whole process / the import alone)",
                 "bayesgmm s": f"{statistics.median(t for t, _ in imports):.2f} / "
                               f"{statistics.median(float(o) for _, o in imports):.3f}",
                 "scikit-learn s": "", "ratio": "", "goal": "import <= 0.5 s"})
    for name, data in DATA.items():
        theirs = statistics.median(run(THEIRS.format(data=data), None)[0]
                                   for _ in range(repeats))
        empty, warm = empty_and_warm(OURS.format(data=data), repeats)
        for label, ours, goal in (("empty cache", empty, "ratio >= 1"),
                                  ("warm cache", warm, "ratio >= 2")):
            rows.append({"case": f"{name}: select_model + tied fit, {label}",
                         "bayesgmm s": f"{ours:.2f}", "scikit-learn s": f"{theirs:.2f}",
                         "ratio": f"{theirs / ours:.2f}x", "goal": goal})
            print(rows[-1], flush=True)
    empty, warm = empty_and_warm(BAYES, repeats)
    rows.append({"case": "Old Faithful: default BayesianGaussianMixture fit, empty / warm cache",
                 "bayesgmm s": f"{empty:.1f} / {warm:.1f}", "scikit-learn s": "",
                 "ratio": "", "goal": "warm <= 3 s"})
    print(rows[-1], flush=True)
    if not args.quick:
        with tempfile.TemporaryDirectory() as root:
            ours, theirs = json.loads(run(FIT_1E5, root)[1].strip().splitlines()[-1])
        rows.append({"case": "fit, 100,000 x 8, K=8, full, 20 iterations (best of 3 warm)",
                     "bayesgmm s": f"{ours:.3f}", "scikit-learn s": f"{theirs:.3f}",
                     "ratio": f"{theirs / ours:.1f}x", "goal": "ratio >= 20"})
        print(rows[-1], flush=True)
    text = markdown_table(rows, list(rows[0]))
    print(text)
    if not args.quick:
        write_readme("startup", text)


if __name__ == "__main__":
    main()

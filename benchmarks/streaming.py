"""Streaming memory goal (issues #6 and #21): fit 1e7 x 8 float64 rows on disk (640 MB) with
peak resident memory below 1 GB, measured by ``/usr/bin/time -v``.

    python benchmarks/streaming.py [--rows 10000000] [--estimator em|vi]

``--estimator vi`` streams :class:`~bayesgmm.VariationalGaussianMixture` (coordinate-ascent
VI) instead of EM.

Writes the data file (a raw float64 array, read as a ``numpy.memmap``) into a temporary
folder, fits ``GaussianMixture(8)`` on it in a child process under ``/usr/bin/time -v`` and
rewrites the ``streaming`` table of ``benchmarks/README.md`` with the peak RSS, the wall
time, the iterations and the time per iteration. The anchor is the same fit in memory on the
first 1e6 rows (the whole 1e7 rows would need 640 MB for the data plus ~3.5 GB for the
features), timed per iteration in the same run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

N_DIMS, N_COMPONENTS = 8, 8
#: Each child fits with ``tol=0`` (exactly this many iterations): once with ``MANY_ITER`` cold
#: (compilation included), then, with every program compiled, with ``FEW_ITER`` and
#: ``MANY_ITER``; the difference of the last two times is the cost of the extra iterations.
FEW_ITER, MANY_ITER = 2, 12

CHILD = """
import json, sys, time, warnings
import numpy as np
from bayesgmm import GaussianMixture, VariationalGaussianMixture
path, rows, in_memory = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
data = np.memmap(path, dtype=np.float64, mode="r", shape=(rows, {d}))
if in_memory:
    data = np.array(data)
def fit(n_iter):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = {estimator}(n_components={k}, max_iter=n_iter, tol=0.0,
                            random_state=0).fit(data)
    return time.perf_counter() - start, model
cold, _ = fit({many})
fit({few})  # compiles the programs whose shapes depend on max_iter
few, _ = fit({few})
many, model = fit({many})
print(json.dumps({{"cold_seconds": cold, "seconds": many,
                  "per_iter": (many - few) / ({many} - {few}),
                  "n_iter": model.n_iter_, "lower_bound": model.lower_bound_}}))
"""


def write_data(path: Path, rows: int) -> None:
    """Rows of the benchmark mixture of ``benchmarks/run.py``, written a million at a time
    (never all in memory): one million drawn rows, in a fresh random order for each block."""
    from run import make_problem

    block = make_problem(min(rows, 1_000_000), N_DIMS, N_COMPONENTS, seed=0)[0]
    out = np.memmap(path, dtype=np.float64, mode="w+", shape=(rows, N_DIMS))
    for start in range(0, rows, len(block)):
        n = min(len(block), rows - start)
        out[start:start + n] = block[np.random.default_rng(start).permutation(len(block))[:n]]
    out.flush()
    del out


#: The estimators the benchmark can stream, by ``--estimator``.
ESTIMATORS = {"em": "GaussianMixture", "vi": "VariationalGaussianMixture"}


def measure(path: Path, rows: int, in_memory: bool, estimator: str = "em") -> dict:
    """Run the child under ``/usr/bin/time -v``: its JSON line plus the peak RSS (MB)."""
    child = CHILD.format(d=N_DIMS, k=N_COMPONENTS, few=FEW_ITER, many=MANY_ITER,
                         estimator=ESTIMATORS[estimator])
    result = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", child, str(path),
                             str(rows), "1" if in_memory else "0"],
                            capture_output=True, text=True, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    out["peak_rss_mb"] = peak_kb / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--anchor-rows", type=int, default=1_000_000)
    parser.add_argument("--estimator", choices=sorted(ESTIMATORS), default="em",
                        help="em: GaussianMixture (issue #6); vi: VariationalGaussianMixture, "
                             "coordinate-ascent VI (issue #21)")
    args = parser.parse_args()
    from run import machine_description, render_table, write_readme

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.f64"
        start = time.perf_counter()
        write_data(path, args.rows)
        print(f"wrote {path.stat().st_size / 2**20:.0f} MB in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        streamed = measure(path, args.rows, in_memory=False, estimator=args.estimator)
        print("streamed", streamed, flush=True)
        anchor = measure(path, args.anchor_rows, in_memory=True, estimator=args.estimator)
        print("in memory", anchor, flush=True)
    rows = [("streamed from disk (memmap)", args.rows, streamed),
            ("in memory (anchor)", args.anchor_rows, anchor)]
    per_row_anchor = anchor["per_iter"] / args.anchor_rows
    lines = [f"| {name} | {n:,} | {r['peak_rss_mb']:.0f} | {r['cold_seconds']:.1f} | "
             f"{r['seconds']:.1f} | {1e3 * r['per_iter']:.0f} | "
             f"{r['per_iter'] / n / per_row_anchor:.2f} |"
             for name, n, r in rows]
    table = render_table(
        f"| fit | rows | peak RSS (MB) | fit of {MANY_ITER} iterations, cold (s, compile included) "
        f"| same, warm (s) | ms per iteration | "
        "time per row and iteration vs in memory |",
        "|---|---:|---:|---:|---:|---:|---:|", lines)
    print(machine_description())
    print(table)
    write_readme("streaming" if args.estimator == "em" else "streaming-vi", table)


if __name__ == "__main__":
    main()

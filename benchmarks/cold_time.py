"""Where the time of a first call goes: import, tracing, lowering, XLA compilation, loading
from the compile cache, and running (issue #22).

Usage: ``.venv/bin/python benchmarks/cold_time.py`` (writes the ``cold-time`` block of
``benchmarks/README.md``)

Each workload runs in a fresh process, first with the compile cache off (everything is
compiled), then with a warm cache (a folder filled by an untimed run). JAX's monitoring events
give the seconds spent tracing (``jaxpr_trace_duration``), lowering to StableHLO
(``jaxpr_to_mlir_module_duration``), compiling (``backend_compile_duration``), reading JAX's
cache (``cache_retrieval_time_sec``) and loading bayesgmm's programs from its program cache
(``/bayesgmm/base/program_cache/load_duration``, no tracing needed); "other" is the rest of the
workload (running, host work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_readme

PROBE = """
import collections, json, time
start = time.perf_counter()
import jax
from jax import monitoring
seconds = collections.Counter()
monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: seconds.__setitem__(event, seconds[event] + duration))
import bayesgmm
X = bayesgmm.load_faithful()
imported = time.perf_counter()
{work}
done = time.perf_counter()
print(json.dumps({{"import": imported - start, "work": done - imported,
                   **{{k.rsplit("/", 1)[1]: v for k, v in seconds.items()}}}}))
"""

WORKLOADS = {
    "GaussianMixture(3, 'tied').fit": (
        "bayesgmm.GaussianMixture(3, covariance_type='tied', random_state=0).fit(X)"),
    "select_model (default grid)": "bayesgmm.select_model(X, random_state=0)",
    "BayesianGaussianMixture().fit (default)": (
        "bayesgmm.BayesianGaussianMixture(random_state=0, progress_bar=False).fit(X)"),
}

EVENTS = {"trace": "jaxpr_trace_duration", "lower": "jaxpr_to_mlir_module_duration",
          "compile": "backend_compile_duration", "cache read": "cache_retrieval_time_sec",
          "program load": "load_duration"}


def run(work: str, cache: str) -> dict:
    env = dict(os.environ, BAYESGMM_COMPILE_CACHE=cache)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", PROBE.format(work=work)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    lines = ["| workload | cache | import s | work s | trace | lower | compile | cache read | "
             "program load | other |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, work in WORKLOADS.items():
        with tempfile.TemporaryDirectory() as folder:
            run(work, folder)  # fills the cache
            for label, cache in (("off", "off"), ("warm", folder)):
                r = run(work, cache)
                parts = {k: r.get(v, 0.0) for k, v in EVENTS.items()}
                other = r["work"] - sum(parts.values())
                lines.append(f"| {name} | {label} | {r['import']:.2f} | {r['work']:.2f} | "
                             + " | ".join(f"{v:.2f}" for v in parts.values())
                             + f" | {other:.2f} |")
                print(lines[-1], flush=True)
    write_readme("cold-time", "\n".join(lines))


if __name__ == "__main__":
    main()

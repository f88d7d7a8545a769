"""EM over several JAX processes, each holding only its own rows (here: two processes on this
machine, each with two CPU devices, standing in for two hosts).

Run: ``.venv/bin/python examples/multihost_em.py`` starts the two worker processes and
prints process 0's fit. On a real cluster, start one worker per host with the coordinator's
address (``jax.distributed.initialize()`` finds it by itself under Slurm, Open MPI or on
Cloud TPU)::

    python examples/multihost_em.py --worker PROCESS_ID --processes N --coordinator HOST:PORT

Each worker loads its own share of the rows (here: rows ``i`` with ``i % N == PROCESS_ID``
of a simulated table) and calls the ordinary ``GaussianMixture(...).fit(rows)``. The column
summary and the row count are combined across processes, the rows stay where they are, and
every process ends with the same fitted model. See ``docs/scaling.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

DEVICES_PER_PROCESS = 2


def all_rows():
    """The whole simulated table (each worker keeps only its share)."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 2.0], [0.0, 6.0, -2.0]])
    labels = rng.choice(3, size=30_000, p=[0.5, 0.3, 0.2])
    return centres[labels] + rng.normal(size=(30_000, 3))


def worker(process_id: int, n_processes: int, coordinator: str) -> None:
    import jax

    jax.distributed.initialize(coordinator_address=coordinator, num_processes=n_processes,
                               process_id=process_id)
    from bayesgmm import GaussianMixture

    rows = all_rows()[process_id::n_processes]          # this process's rows only
    model = GaussianMixture(3, n_init=2, tol=1e-9, random_state=0).fit(rows)
    if jax.process_index() == 0:
        print(json.dumps({
            "processes": jax.process_count(), "devices": jax.device_count(),
            "rows_here": len(rows), "n_iter": int(model.n_iter_),
            "lower_bound": model.lower_bound_, "weights": model.weights_.tolist(),
            "means": model.means_.tolist(), "covariances": model.covariances_.tolist()}),
            flush=True)
    jax.distributed.shutdown()


def launch(n_processes: int = 2) -> dict:
    """Start ``n_processes`` workers on this machine; return process 0's result."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ)
    env["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS} "
                        + env.get("XLA_FLAGS", "")).strip()
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(i), "--processes",
                                 str(n_processes), "--coordinator", f"127.0.0.1:{port}"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for i in range(n_processes)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        if w.returncode:
            raise RuntimeError(f"worker failed ({w.returncode}):\n{err[-3000:]}")
    # (the collectives library also writes connection messages to stdout)
    return json.loads(next(line for line in outputs[0][0].splitlines()[::-1]
                           if line.startswith("{")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", type=int)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--coordinator")
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.processes, args.coordinator)
    else:
        result = launch(args.processes)
        print(f"{result['processes']} processes, {result['devices']} devices, "
              f"{result['rows_here']:,} rows in process 0; {result['n_iter']} iterations, "
              f"lower bound {result['lower_bound']:.6f}")
        for weight, mean in zip(result["weights"], result["means"], strict=True):
            print(f"  weight {weight:.3f}  mean " + " ".join(f"{m:7.3f}" for m in mean))


if __name__ == "__main__":
    main()

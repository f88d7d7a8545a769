"""What one E-step pass of a sweep's all-rows batch costs, piece by piece.

Usage: ``.venv/bin/python benchmarks/estep_cost.py``

The all-rows batch of the default grid on 100,000 x 8 is 36 fits, each padded to K = 9
components on 44 feature columns, over 13 blocks of 7,936 rows. This times, in float64, the
log-density matrix product alone, the normalisation alone (max, exp, sum, log: the
responsibilities) and the whole pass (product, normalisation, and the statistics' product),
each as the compiled sweep runs it: a ``lax.scan`` over blocks of a ``vmap`` over fits.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.engine.preprocessing import compute_context

N_FITS, N_COMPONENTS, BLOCK_ROWS, N_BLOCKS, N_COLUMNS = 36, 9, 7936, 13, 44


def seconds(fn, *args, repeats: int = 5) -> float:
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / repeats


def normalise(log_prob):
    top = jnp.max(log_prob, axis=1, keepdims=True)
    total = jnp.sum(jnp.exp(log_prob - top), axis=1, keepdims=True)
    return jnp.exp(log_prob - top) / total, jnp.sum(jnp.log(total) + top)


def over_blocks(per_fit):
    def run(features, coefficients):
        def block(carry, x):
            return carry + jnp.sum(jax.vmap(lambda w: per_fit(x, w))(coefficients)), None
        return jax.lax.scan(block, 0.0, features)[0]
    return run


def main() -> None:
    rng = np.random.default_rng(0)
    with compute_context(np.float64):
        features = jnp.asarray(rng.normal(size=(N_BLOCKS, BLOCK_ROWS, N_COLUMNS)))
        coefficients = jnp.asarray(rng.normal(size=(N_FITS, N_COLUMNS, N_COMPONENTS)) * 0.01)
        pieces = {
            "log-density product": lambda x, w: jnp.sum(x @ w),
            "normalisation (exp)": lambda x, w: sum(
                jnp.sum(a) for a in normalise(x[:, :N_COMPONENTS] * w[0])),
            "whole pass": lambda x, w: (lambda r, ll: jnp.sum(r.T @ x) + ll)(
                *normalise(x @ w)),
        }
        for name, per_fit in pieces.items():
            print(f"{name:22s} {seconds(over_blocks(per_fit), features, coefficients):.3f} s "
                  "per pass", flush=True)


if __name__ == "__main__":
    main()

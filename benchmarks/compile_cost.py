"""XLA compile time of the pieces a fit's program is made of (why starts draw on the host).

Usage: ``.venv/bin/python benchmarks/compile_cost.py``

Prints the compile time (``jax.jit(f).lower(...).compile()``, float64) of each ``jax.random``
call site the starts used to contain, of their host-draw replacement
(:func:`bayesgmm.core.init.draw_rows`), and of whole k-means start programs (45 fits, K = 9,
10,000 x 8), vmapped over 45 fits as in a sweep.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.core.init import draw_rows, init_draws, initial_responsibilities
from bayesgmm.engine.preprocessing import compute_context


def compile_seconds(fn, *args) -> float:
    start = time.perf_counter()
    jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - start


def main() -> None:
    n_fits, n_rows = 45, 10_000
    with compute_context(np.float64):
        keys = jax.random.split(jax.random.PRNGKey(0), n_fits)
        weight = jnp.ones(n_rows) / n_rows
        uniforms = jnp.asarray(np.random.default_rng(0).random((n_fits, 3)))
        x = jnp.asarray(np.random.default_rng(1).normal(size=(n_rows, 8)))
        draws = jnp.asarray(init_draws(0, n_fits, "kmeans", 9))
        pieces = {
            "jax.random.choice(p=...)": (jax.vmap(
                lambda k: jax.random.choice(k, n_rows, (3,), p=weight)), keys),
            "jax.random.randint": (jax.vmap(
                lambda k: jax.random.randint(k, (3,), 0, n_rows)), keys),
            "jax.random.split": (jax.vmap(jax.random.split), keys),
            "jax.random.fold_in": (jax.vmap(lambda k: jax.random.fold_in(k, 3)), keys),
            "draw_rows (host uniforms)": (jax.vmap(lambda u: draw_rows(weight, u)), uniforms),
            "k-means start, 45 fits (host draws)": (jax.vmap(
                lambda d: initial_responsibilities(d, x, jnp.ones(n_rows), 9, "kmeans")),
                draws),
        }
        for name, (fn, args) in pieces.items():
            print(f"{name:40s} compile {compile_seconds(fn, args):5.2f} s", flush=True)


if __name__ == "__main__":
    main()

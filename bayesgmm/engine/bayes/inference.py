"""Inference for :func:`~bayesgmm.engine.bayes.models.mixture_model`: NUTS and stochastic VI.

Both runners start from constrained site values (:mod:`bayesgmm.engine.bayes.initial`) and return
latent draws with a leading ``(chain, draw)`` shape, so everything downstream treats the two
methods alike.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn
from numpyro.optim import Adam

from bayesgmm.engine.bayes.models import ModelSpec, mixture_model

#: Standard deviation of the per-chain jitter added to the EM start in unconstrained space:
#: chains start in one labelling but not at one point, so R-hat can see non-convergence.
INIT_JITTER = 0.05


@dataclass(frozen=True)
class NutsSettings:
    """Static settings of :func:`run_nuts`: warm-up and kept draws per chain, chains, and
    NUTS's target acceptance probability and largest tree depth. All but ``num_chains``
    shape the compiled chain program (:meth:`program_settings`)."""

    num_warmup: int
    num_samples: int
    num_chains: int
    target_accept_prob: float
    max_tree_depth: int

    def program_settings(self) -> tuple[int, int, float, int]:
        """``(num_warmup, num_samples, target_accept_prob, max_tree_depth)``: what fixes the
        chain program's code (the chains run concurrently, one program each)."""
        return (self.num_warmup, self.num_samples, self.target_accept_prob,
                self.max_tree_depth)


@dataclass(frozen=True)
class SviSettings:
    """Static settings of :func:`run_svi` (see there): Adam's ``learning_rate``, at most
    ``max_steps`` steps in chunks of ``check_every``, the stopping ``tol`` (nats per data
    point), minibatches of ``subsample_size`` rows (None: all rows), ``num_draws`` draws
    from the fitted guide and the guide's initial ``init_scale``."""

    learning_rate: float
    max_steps: int
    tol: float
    check_every: int
    subsample_size: int | None
    num_draws: int
    init_scale: float


@dataclass
class InferenceResult:
    """Latent draws ``sites[name]`` of shape (chains, draws, ...) and sampler statistics.

    ``sample_stats`` holds arrays of shape (chains, draws) (NUTS: diverging, tree_depth,
    n_steps, accept_prob, step_size, energy); ``info`` holds scalars and histories
    (VI: ``loss``, the negative ELBO per step; ``n_steps``; ``converged``).
    """

    sites: dict
    sample_stats: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def _report_progress(chain, i) -> None:
    """Host callback from the compiled chains: advance the active progress bar (chain 0)."""
    bar = _ACTIVE_BAR[0]
    if bar is not None and int(chain) == 0 and int(i) > bar.n:
        bar.update(int(i) - bar.n)


_ACTIVE_BAR: list = [None]
_PROGRESS_EVERY = 20
#: Compiled chain programs (futures, see :func:`prepare_nuts`) by :func:`_program_key`:
#: repeated fits of the same shapes reuse them instead of recompiling.
_COMPILED: dict = {}


def _nuts_program(spec: ModelSpec, num_warmup: int, num_samples: int,
                  target_accept_prob: float, max_tree_depth: int):
    """One chain from initialisation to its last draw as one function: warm-up and sampling
    are a single ``lax.scan`` over NumPyro's NUTS kernel, so the sampler is traced and
    compiled once. (``numpyro.infer.MCMC`` compiles warm-up, sampling and post-processing
    separately and runs many small eager ops; on small data that was most of the wall time.)

    The kernel runs on the unconstrained sites flattened into one vector: NUTS's per-step
    bookkeeping (momenta, U-turn checks, mass-matrix adaptation) is then one array operation
    instead of one per site, which shortened both sampling and compiling (figures in
    ``benchmarks/README.md``). The mass matrix stays diagonal, as it was per site.
    """
    n_steps = num_warmup + num_samples

    def one_chain(y, init_constrained, jitter, key, chain):
        init_key, jitter_key = jax.random.split(key)
        unconstrained = unconstrain_fn(mixture_model, (y, spec), {}, init_constrained)
        flat, unflatten = ravel_pytree(unconstrained)
        start = flat + jitter * jax.random.normal(jitter_key, flat.shape, flat.dtype)
        init_kernel, sample_kernel = hmc(
            potential_fn=lambda z: potential_energy(mixture_model, (y, spec), {}, unflatten(z)),
            algo="NUTS")
        state = init_kernel(start, num_warmup, target_accept_prob=target_accept_prob,
                            max_tree_depth=max_tree_depth, rng_key=init_key)

        def step(state, i):
            state = sample_kernel(state)
            jax.lax.cond(i % _PROGRESS_EVERY == 0,
                         lambda: jax.debug.callback(_report_progress, chain, i), lambda: None)
            record = (state.z, state.diverging, state.num_steps, state.accept_prob,
                      state.energy, state.adapt_state.step_size)
            return state, record

        _, trace = jax.lax.scan(step, state, jnp.arange(1, n_steps + 1))
        trace = jax.tree_util.tree_map(lambda a: a[num_warmup:], trace)
        z, *stats = trace
        constrained = jax.vmap(
            lambda u: constrain_fn(mixture_model, (y, spec), {}, unflatten(u)))(z)
        return constrained, stats

    return jax.jit(one_chain)


def _program_key(spec: ModelSpec, n_samples: int, settings: NutsSettings) -> tuple:
    """The key of a compiled chain program: everything that fixes its code and shapes
    (data are float64, see :mod:`bayesgmm.estimators.bayesian`)."""
    return (spec, *settings.program_settings(), (n_samples, spec.n_features), "float64")


def _compile_nuts(settings: tuple):
    """Trace and compile the chain program of ``settings`` from shapes alone."""
    spec, num_warmup, num_samples, target_accept_prob, max_tree_depth, shape, _ = settings
    with jax.enable_x64(True):
        f64 = jnp.float64
        init = {name: jax.ShapeDtypeStruct(site_shape, f64)
                for name, (_, site_shape) in latent_constraints(spec).items()}
        key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
        program = _nuts_program(spec, num_warmup, num_samples, target_accept_prob,
                                max_tree_depth)
        return program.lower(jax.ShapeDtypeStruct(shape, f64), init,
                             jax.ShapeDtypeStruct((), f64), key,
                             jax.ShapeDtypeStruct((), jnp.int32)).compile()


_COMPILER = ThreadPoolExecutor(1, thread_name_prefix="bayesgmm-compile")


def prepare_nuts(spec: ModelSpec, n_samples: int, settings: NutsSettings):
    """Start compiling the chain program for data of ``n_samples`` rows in the background
    (unless it is compiled or compiling) and return its future.

    The program depends only on shapes, so :class:`~bayesgmm.BayesianGaussianMixture`
    calls this before its EM start: XLA compiles (without the GIL) on the second core
    while the EM start runs on the first. Of ``settings`` only those that shape the program
    count (:meth:`NutsSettings.program_settings`): fits that differ in ``num_chains`` share
    it.

    Tracing runs the model under NumPyro's effect handlers, whose stack is global: the
    caller must not run NumPyro models in other threads until the future is done
    (:func:`run_nuts` waits for it first).
    """
    key = _program_key(spec, n_samples, settings)
    known = _COMPILED.get(key)
    if known is None or (known.done() and known.exception() is not None):  # retry a failure
        _COMPILED[key] = _COMPILER.submit(_compile_nuts, key)
    return _COMPILED[key]


def run_nuts(y, spec: ModelSpec, init_sites: dict, key, settings: NutsSettings, *,
             progress_bar: bool) -> InferenceResult:
    """NUTS with ``settings.num_chains`` chains started near ``init_sites`` (constrained
    values; each chain adds ``INIT_JITTER`` noise in unconstrained space). It runs in float64
    whatever the caller's x64 setting.

    The chain program is compiled once (see :func:`prepare_nuts`) and the chains run
    concurrently in threads (JAX releases the GIL while a compiled program runs), one per
    CPU core: unlike vmapped chains, no chain waits for the longest trajectory of another,
    and no device flags are needed.
    """
    num_chains = settings.num_chains
    with jax.enable_x64(True):
        y = jnp.asarray(y, jnp.float64)
        init = {k: jnp.asarray(init_sites[k], y.dtype) for k in latent_constraints(spec)}
        jitter = jnp.asarray(INIT_JITTER, y.dtype)
        keys = jax.random.split(key, num_chains)
        chains = jnp.arange(num_chains, dtype=jnp.int32)
    compiled = prepare_nuts(spec, y.shape[0], settings).result()
    bar = _progress(settings.num_warmup + settings.num_samples, f"NUTS ({num_chains} chains)",
                    progress_bar)
    _ACTIVE_BAR[0] = bar

    def chain(index):
        # enable_x64 is thread-local: re-enter it for the float64 data.
        with jax.enable_x64(True):
            return jax.device_get(compiled(y, init, jitter, keys[index], chains[index]))

    workers = max(1, min(num_chains, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        runs = list(pool.map(chain, range(num_chains)))
    sites, stats = jax.tree_util.tree_map(lambda *a: np.stack(a), *runs)
    _ACTIVE_BAR[0] = None
    if bar is not None:
        bar.update(bar.total - bar.n)
        bar.close()
    sites = {k: np.asarray(v) for k, v in sites.items() if k != "y"}
    diverging, n_steps, accept, energy, step_size = (np.asarray(a) for a in stats)
    sample_stats = {"diverging": diverging.astype(bool), "n_steps": n_steps,
                    "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(int) + 1,
                    "acceptance_rate": accept, "energy": energy, "step_size": step_size}
    return InferenceResult(sites, sample_stats, {})


def latent_constraints(spec: ModelSpec) -> dict:
    """Support of every latent site of :func:`mixture_model` for ``spec`` (name -> (constraint,
    constrained shape)); the order is the model's."""
    t, d = spec.n_components, spec.n_features
    sites = {}
    if spec.concentration_site:
        sites[spec.concentration_site] = (constraints.positive, ())
    if spec.weights == "dp":
        sites["stick_u"] = (constraints.unit_interval, (t - 1,))
    else:
        sites["weight_u"] = (constraints.unit_interval, (t,))
        sites["weight_gamma"] = (constraints.positive, (t,))
    sites["means"] = (constraints.real, (t, d))
    sites["scales"] = (constraints.positive, (t, d))
    if spec.correlated:
        sites["corr_cholesky"] = (constraints.corr_cholesky, (t, d, d))
    return sites


def mean_field_guide(y, spec: ModelSpec, n_total=None, *, init_locs: dict,
                     init_scale: float):
    """Mean-field normal guide on the unconstrained sites (what ``AutoNormal`` builds), written
    out so that it needs no eager prototype run of the model and its setup compiles with SVI's.
    ``init_locs`` are unconstrained starting values."""
    for name, (constraint, _) in latent_constraints(spec).items():
        loc = numpyro.param(f"{name}_loc", init_locs[name])
        scale = numpyro.param(f"{name}_scale", jnp.full(jnp.shape(loc), init_scale, loc.dtype),
                              constraint=constraints.softplus_positive)
        base = dist.Normal(loc, scale).to_event(jnp.ndim(loc))
        numpyro.sample(name, dist.TransformedDistribution(base, biject_to(constraint)))


@partial(jax.jit, static_argnames=("spec", "num_draws"))
def guide_draws(params: dict, key, spec: ModelSpec, num_draws: int) -> dict:
    """``num_draws`` constrained draws of every latent site from the fitted guide."""
    out = {}
    for i, (name, (constraint, _)) in enumerate(latent_constraints(spec).items()):
        loc, scale = params[f"{name}_loc"], params[f"{name}_scale"]
        noise = jax.random.normal(jax.random.fold_in(key, i), (num_draws, *loc.shape), loc.dtype)
        out[name] = biject_to(constraint)(loc + scale * noise)
    return out


def run_svi(y, spec: ModelSpec, init_sites: dict, key, settings: SviSettings, *,
            progress_bar: bool) -> InferenceResult:
    """Stochastic VI with a mean-field normal guide (:func:`mean_field_guide`) on the
    unconstrained sites, Adam, and an ELBO stopping rule.

    The optimisation runs in compiled chunks of ``check_every`` steps (names here are the
    fields of ``settings``). It stops when the mean
    loss per data point of one chunk differs from the previous chunk's by less than ``tol``
    nats, or after ``max_steps``.

    ``subsample_size`` uses minibatches of that many rows, drawn uniformly with replacement
    at every step (``jax.random.randint``: O(batch) work, where NumPyro's ``plate``
    subsampling runs a sequential Fisher-Yates scan over ``subsample_size`` steps with an
    ``N``-long carry; figures in ``benchmarks/README.md``), the likelihood scaled by
    ``N / subsample_size``. The minibatch
    loss is noisy, so the stopping rule then also accepts a change smaller than twice its
    standard error (from the spread of the two chunks' step losses): the loss has stopped
    moving by more than the noise can show.
    """
    check_every, subsample_size = settings.check_every, settings.subsample_size
    y = jnp.asarray(y)
    n_samples = y.shape[0]
    init_locs = {name: biject_to(constraint).inv(jnp.asarray(init_sites[name], y.dtype))
                 for name, (constraint, _) in latent_constraints(spec).items()}
    guide = partial(mean_field_guide, init_locs=init_locs, init_scale=settings.init_scale)
    svi = SVI(mixture_model, guide, Adam(settings.learning_rate), Trace_ELBO())
    init_key, draw_key, batch_key = jax.random.split(key, 3)
    n_total = None if subsample_size is None else n_samples

    def batch_of(data, key):
        if n_total is None:
            return data
        return data[jax.random.randint(key, (subsample_size,), 0, n_total)]

    state = jax.jit(lambda k, data: svi.init(k, batch_of(data, k), spec, n_total))(init_key, y)

    @jax.jit
    def chunk(carry, data):
        def step(carry, _):
            state, key = carry
            key, sub = jax.random.split(key)
            state, loss = svi.update(state, batch_of(data, sub), spec, n_total)
            return (state, key), loss

        return jax.lax.scan(step, carry, None, length=check_every)

    losses, previous, previous_se, converged = [], np.inf, 0.0, False
    n_chunks = max(1, -(-settings.max_steps // check_every))
    bar = _progress(n_chunks * check_every, "VI", progress_bar)
    carry = (state, batch_key)
    for _ in range(n_chunks):
        carry, chunk_losses = chunk(carry, y)
        chunk_losses = np.asarray(chunk_losses)
        losses.append(chunk_losses)
        current = float(np.mean(chunk_losses)) / n_samples
        standard_error = float(np.std(chunk_losses)) / np.sqrt(len(chunk_losses)) / n_samples
        if bar is not None:
            bar.update(check_every)
            bar.set_postfix(loss_per_point=f"{current:.4f}")
        if not np.isfinite(current):
            break
        noise = 0.0 if n_total is None else 2.0 * np.hypot(standard_error, previous_se)
        if abs(previous - current) < settings.tol + noise:
            converged = True
            break
        previous, previous_se = current, standard_error
    state = carry[0]
    if bar is not None:
        bar.close()
    draws = guide_draws(svi.get_params(state), draw_key, spec, settings.num_draws)
    sites = {k: np.asarray(v)[None] for k, v in draws.items()}
    history = np.concatenate(losses)
    return InferenceResult(sites, {}, {"loss": history, "n_steps": len(history),
                                       "converged": converged})


def _progress(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=description)

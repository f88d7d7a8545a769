"""Convergence diagnostics of chains without ArviZ: rank-normalised split R-hat and bulk
effective sample size (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021).

The Gibbs sampler uses them between blocks of sweeps to decide whether its chains are long
enough; they agree with ``arviz.rhat`` and ``arviz.ess(method="bulk")``
(``tests/estimators/test_gibbs_fit.py``), which :mod:`bayesgmm.engine.bayes.diagnostics` uses.

For draws ``x`` (chains, draws): each chain is cut in two halves (a trend within a chain shows
as disagreement between its halves); the values are replaced by normal scores of their ranks
over all chains (``Phi^-1((rank - 3/8) / (n + 1/4))``, ties sharing their average rank), so
that heavy tails and discreteness do not matter; then

* R-hat is ``sqrt((W (m - 1) / m + B / m) / W)`` for the ranks and, for the tails, for the
  ranks of ``|x - median|``, the larger of the two (``W`` the mean within-chain variance,
  ``B / m`` the variance of the chain means, ``m`` draws per half-chain);
* the bulk ESS is ``chains x draws / tau`` with ``tau = -1 + 2 sum_t rho_t`` summed by Geyer's
  initial positive and monotone sequences over autocorrelations ``rho_t`` combined across
  chains, ``rho_t = 1 - (W - mean autocovariance_t) / var_plus``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata


def split_halves(draws: np.ndarray) -> np.ndarray:
    """(chains, draws) -> (2 chains, draws // 2): first and last halves (the middle draw of an
    odd count is dropped)."""
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half:]], axis=0)


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of all values together (average ranks for ties)."""
    ranks = rankdata(values, method="average").reshape(values.shape)
    return ndtri((ranks - 0.375) / (values.size + 0.25))


def _rhat(chains: np.ndarray) -> float:
    length = chains.shape[1]
    within = np.mean(np.var(chains, axis=1, ddof=1))
    between_over_length = np.var(np.mean(chains, axis=1), ddof=1)
    return float(np.sqrt(((length - 1) / length * within + between_over_length) / within))


def rank_rhat(draws: np.ndarray) -> float:
    """Rank-normalised split R-hat of draws (chains, draws): the larger of the bulk and the
    tail (folded) version. NaN for constant draws."""
    draws = np.asarray(draws, np.float64)
    if np.ptp(draws) == 0:
        return float("nan")
    bulk = _rhat(normal_scores(split_halves(draws)))
    folded = np.abs(draws - np.median(draws))
    tail = _rhat(normal_scores(split_halves(folded)))
    return max(bulk, tail)


def _autocovariance(chains: np.ndarray) -> np.ndarray:
    """Biased autocovariances of each row at every lag (FFT, zero-padded)."""
    length = chains.shape[1]
    centred = chains - chains.mean(axis=1, keepdims=True)
    size = 2 ** int(np.ceil(np.log2(2 * length)))
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :length] / length


def effective_sample_size(chains: np.ndarray) -> float:
    """ESS of chains (m, n) by Geyer's initial positive and monotone sequences."""
    n_chains, length = chains.shape
    if np.ptp(chains) == 0:
        return float(chains.size)
    autocovariance = _autocovariance(chains)
    within = np.mean(autocovariance[:, 0]) * length / (length - 1.0)
    var_plus = within * (length - 1.0) / length
    if n_chains > 1:
        var_plus += np.var(chains.mean(axis=1), ddof=1)
    rho = 1.0 - (within - autocovariance.mean(axis=0)) / var_plus
    rho[0] = 1.0
    # Initial positive sequence: sums of adjacent pairs while positive.
    kept = np.zeros(length)
    kept[:2] = rho[:2]
    t = 1
    even, odd = rho[0], rho[1]
    while t < length - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0:
        kept[last + 1] = even
    # Initial monotone sequence: pair sums never increase.
    t = 1
    while t <= last - 2:
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
        t += 2
    tau = -1.0 + 2.0 * np.sum(kept[:last + 1]) + np.sum(kept[last + 1:last + 2])
    tau = max(tau, 1.0 / np.log10(chains.size))
    return float(chains.size / tau)


def bulk_ess(draws: np.ndarray) -> float:
    """Bulk ESS of draws (chains, draws): the ESS of the normal scores of the split chains.
    NaN for constant draws."""
    draws = np.asarray(draws, np.float64)
    if np.ptp(draws) == 0:
        return float("nan")
    return effective_sample_size(normal_scores(split_halves(draws)))


#: Ranks of the sorted weights whose posterior mean is at least this are diagnosed.
SORTED_WEIGHT_MEAN = 0.01
#: The indicators I(K+ = k) of every k at least this probable are diagnosed.
INDICATOR_PROBABILITY = 0.05


def label_invariant_quantities(log_likelihood: np.ndarray, concentration: np.ndarray | None,
                               weights: np.ndarray, counts: np.ndarray,
                               concentration_name: str = "concentration"
                               ) -> dict[str, np.ndarray]:
    """The quantities that do not depend on the labels, as (chains, draws) arrays: the
    concentration (when it is sampled), the log-likelihood, the weights sorted largest first
    (each rank whose posterior mean is at least :data:`SORTED_WEIGHT_MEAN`), and the
    indicators ``I(K+ = k)`` of the number of occupied clusters for every ``k`` with
    posterior probability at least :data:`INDICATOR_PROBABILITY` (rank R-hat of a discrete
    K+ itself is fragile: its many ties make ranks uninformative).

    Parameters
    ----------
    log_likelihood : (chains, draws); concentration : (chains, draws) or None
    weights : (chains, draws, T); counts : (chains, draws, T) rows per cluster
    """
    out = {}
    if concentration is not None:
        out[concentration_name] = np.asarray(concentration)
    out["log_likelihood"] = np.asarray(log_likelihood)
    ranked = -np.sort(-np.asarray(weights), axis=-1)
    for rank in np.flatnonzero(ranked.mean(axis=(0, 1)) >= SORTED_WEIGHT_MEAN):
        out[f"sorted_weight[{rank}]"] = ranked[..., rank]
    n_occupied = (np.asarray(counts) > 0).sum(axis=-1)
    values, frequency = np.unique(n_occupied, return_counts=True)
    for value, count in zip(values, frequency, strict=True):
        if count / n_occupied.size >= INDICATOR_PROBABILITY:
            out[f"I(K+ = {value})"] = (n_occupied == value).astype(float)
    return out

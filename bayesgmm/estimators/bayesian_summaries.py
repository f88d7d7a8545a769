"""The posterior summaries of a fitted
:class:`~bayesgmm.estimators.bayesian.BayesianGaussianMixture`: the number of clusters (its
posterior and its prior), segment sizes, how sure each assignment is, and the label-free
summaries (co-clustering similarity, the loss-optimal partition).

:class:`PosteriorSummaries` is a mixin of the estimator; it works on the draws that
:class:`~bayesgmm.estimators.bayesian_draws.PosteriorDraws` passes over rows. Every interval
is the central ``credible_level`` interval across draws (:meth:`~PosteriorSummaries.
credible_interval`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesgmm.base.config import seed_from
from bayesgmm.base.estimator_api import check_is_fitted
from bayesgmm.base.validation import is_int
from bayesgmm.core.partition import WeightPrior
from bayesgmm.engine.bayes.cluster_prior import (
    StickBreakingPrior,
    occupied_prior,
    prior_series,
    side_by_side,
    simulated_occupied_prior,
)
from bayesgmm.engine.bayes.coclustering import (
    PartitionEstimate,
    belonging,
    check_loss,
    estimate_partition,
    member_memberships,
    similarity_from_memberships,
)
from bayesgmm.engine.bayes.models import missing_patterns
from bayesgmm.engine.bayes.posterior import (
    cluster_affinity,
    label_probability,
    membership_entropy,
    membership_probabilities,
)
from bayesgmm.engine.preprocessing import compute_context

#: Rows per chunk when per-draw probabilities of every point are needed.
_ROW_CHUNK = 4096
#: Draws used by the label-free summaries (similarity, partition, belonging): evenly spaced
#: over the pass draws.
SUMMARY_DRAWS = 1000
#: Rows per chunk of the belonging pass (draws x rows x clusters per chunk).
_BELONGING_CHUNK = 1024


def credible_set(posterior: pd.Series, level: float) -> list[int]:
    """The fewest values of a discrete posterior (index -> probability) whose probabilities
    add up to at least ``level``, taken most probable first; returned sorted."""
    ordered = posterior.sort_values(ascending=False, kind="stable")
    needed = int(np.searchsorted(np.cumsum(ordered.to_numpy()), level - 1e-12)) + 1
    return sorted(int(k) for k in ordered.index[:needed])


class PosteriorSummaries:
    """Summaries of the fitted posterior (a mixin of ``BayesianGaussianMixture``)."""

    def credible_interval(self, values: np.ndarray,
                          axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The central ``credible_level`` interval of ``values`` along ``axis`` (the draws):
        (lower, upper), each of ``values``' shape without that axis."""
        tail = (1 - self.credible_level) / 2
        return (np.quantile(values, tail, axis=axis), np.quantile(values, 1 - tail, axis=axis))

    def n_clusters_posterior(self) -> pd.Series:
        """Posterior of the number of occupied clusters K+ (clusters with at least one
        training point: the Gibbs sampler's assignments, or assignments sampled from each
        NUTS/VI draw), indexed by that number.

        ``attrs`` holds the ``mode``, the ``credible_set`` (the fewest values whose total
        probability reaches ``credible_level``, most probable first, then sorted) and the
        ``credible_level``.
        """
        check_is_fitted(self)
        counts = (self.occupied_draws_ > 0).sum(axis=1)
        values, frequency = np.unique(counts, return_counts=True)
        series = pd.Series(frequency / len(counts), index=pd.Index(values, name="n_clusters"),
                           name="probability")
        series.attrs.update(mode=int(series.idxmax()),
                            credible_set=credible_set(series, self.credible_level),
                            credible_level=self.credible_level)
        return series

    def segment_sizes(self) -> pd.DataFrame:
        """Share of training points per cluster (sampled assignments) and the weight, with
        credible intervals; clusters ordered by label, unoccupied ones dropped."""
        check_is_fitted(self)
        share = self.occupied_draws_ / self.occupied_draws_.sum(axis=1, keepdims=True)
        weights = np.exp(self.posterior_draws_.log_weights)
        share_low, share_high = self.credible_interval(share)
        weight_low, weight_high = self.credible_interval(weights)
        table = pd.DataFrame({"share": share.mean(axis=0), "share_lower": share_low,
                              "share_upper": share_high, "weight": weights.mean(axis=0),
                              "weight_lower": weight_low, "weight_upper": weight_high,
                              "p_occupied": (self.occupied_draws_ > 0).mean(axis=0)})
        table.index.name = "cluster"
        return table[table["share"] > 0]

    def assignment_uncertainty(self, X=None) -> pd.DataFrame:
        """How sure each point's cluster assignment is (training data when ``X`` is None).

        Columns: ``label`` (largest posterior-mean membership), ``probability`` (its posterior
        mean), ``probability_lower``/``probability_upper`` (``credible_level`` interval of the
        membership probability across draws), ``entropy`` (nats, of the posterior-mean
        memberships), ``ambiguous`` (``probability < ambiguity_threshold``).
        """
        check_is_fitted(self)
        if X is None:
            x, membership = self._x_train, self.training_membership()
        else:
            x = self.validated_input(X)
            membership = self._memberships(x)
        return self.uncertainty_table(x, membership)

    def uncertainty_table(self, x: np.ndarray, membership: np.ndarray) -> pd.DataFrame:
        """:meth:`assignment_uncertainty` of validated rows ``x`` (n, D) (see
        :meth:`validated_input`) whose posterior-mean memberships (n, T) are already
        computed (``predict_proba``)."""
        labels = membership.argmax(axis=1)
        lower, upper = np.empty(len(x)), np.empty(len(x))
        with compute_context(np.float64):
            draws = self.device_draws()
            for start in range(0, len(x), _ROW_CHUNK):
                rows = slice(start, start + _ROW_CHUNK)
                per_draw = np.asarray(label_probability(
                    jnp.asarray(x[rows], jnp.float64), draws, jnp.asarray(labels[rows]),
                    patterns=missing_patterns(x[rows])))
                lower[rows], upper[rows] = self.credible_interval(per_draw)
        probability = membership[np.arange(len(x)), labels]
        return pd.DataFrame({"label": labels, "probability": probability,
                             "probability_lower": lower, "probability_upper": upper,
                             "entropy": membership_entropy(membership),
                             "ambiguous": probability < self.ambiguity_threshold})

    # ------------------------------------------------------------------ the number of clusters
    def n_clusters_prior(self, n_samples: int | None = None) -> pd.Series:
        """The prior on the number of occupied clusters K+ that the fitted model's weight prior
        implies for ``n_samples`` points (default: the training rows), indexed by K+ = 1..T.

        Exact for symmetric Dirichlet weights (every Gibbs prior; the sparse finite mixture of
        the other methods): the Pólya-urn distribution of K+ summed over K and integrated over
        the concentration's prior. Simulated for truncated stick-breaking (the DP of VI, NUTS
        and ADVI). See :mod:`bayesgmm.engine.bayes.cluster_prior`; ``attrs`` holds the ``method``,
        ``n_samples`` and the prior ``mean``.
        """
        check_is_fitted(self)
        n = self._x_train.shape[0] if n_samples is None else n_samples
        if not is_int(n) or n < 1:
            raise ValueError(f"n_samples={n_samples!r} is invalid: it must be an integer >= 1")
        spec, n, t = self._model_spec, int(n), self.n_components
        if self.method != "gibbs" and spec.weights == "dp":
            fixed = spec.alpha
            return prior_series(simulated_occupied_prior(n, StickBreakingPrior(
                fixed, spec.alpha_shape, spec.alpha_rate), t, seed=seed_from(self.random_state)),
                "simulation", n)
        if self.method == "gibbs":
            weights = WeightPrior.named(self.sampler_settings_["weight_concentration_prior_type"],
                                        spec.alpha if spec.weights != "sparse" else spec.e0)
        else:  # sparse finite mixture: Dirichlet(e0), e0 fixed or Gamma(shape, shape / mean)
            weights = WeightPrior(False, False, spec.e0,
                                  ("gamma", spec.e0_shape, spec.e0_shape / spec.e0_mean))
        return prior_series(occupied_prior(n, weights, t), "exact", n)

    def n_clusters_table(self, smallest: float = 0.001) -> pd.DataFrame:
        """The prior (:meth:`n_clusters_prior`, at the training N) and the posterior
        (:meth:`n_clusters_posterior`) of K+ as two rows, ``prior`` and ``posterior``, with the
        columns where either reaches ``smallest``."""
        return side_by_side(self.n_clusters_prior(), self.n_clusters_posterior(), smallest)

    # ------------------------------------------------------------------ label-free summaries
    def _per_draw_memberships(self, x: np.ndarray) -> np.ndarray:
        """Per-draw membership probabilities (S, n, T) of validated rows ``x``."""
        with compute_context(np.float64):
            return np.asarray(membership_probabilities(
                jnp.asarray(x, jnp.float64), self.device_draws(SUMMARY_DRAWS),
                patterns=missing_patterns(x)))

    def _summary_rows(self, n_rows: int, max_rows) -> np.ndarray:
        """All of ``n_rows`` rows, or a random ``max_rows`` of them (sorted), seeded by
        ``random_state``."""
        if not is_int(max_rows) or max_rows < 2:
            raise ValueError(f"max_rows={max_rows!r} is invalid: it must be an integer >= 2")
        if n_rows <= max_rows:
            return np.arange(n_rows)
        rng = np.random.default_rng(seed_from(self.random_state))
        return np.sort(rng.choice(n_rows, int(max_rows), replace=False))

    def posterior_similarity(self, X=None, *, max_rows: int = 1000) -> pd.DataFrame:
        """The posterior co-clustering matrix ``P(z_i = z_j | data)`` of the training rows
        (or of the rows of ``X``), on a random ``max_rows`` of them when there are more.

        Label-free (see :mod:`bayesgmm.engine.bayes.coclustering`): the mean over draws of
        ``sum_k p_ik p_jk``. Returns a square DataFrame indexed both ways by row position.
        """
        check_is_fitted(self)
        x = self._x_train if X is None else self.validated_input(X)
        rows = self._summary_rows(x.shape[0], max_rows)
        similarity = similarity_from_memberships(self._per_draw_memberships(x[rows]))
        index = pd.Index(rows, name="row")
        return pd.DataFrame(similarity, index=index, columns=index.rename("row_"))

    def _partition(self, loss: str, max_rows) -> PartitionEstimate:
        """The loss-optimal partition of (a sample of) the training rows, searched once."""
        key = f"{loss}:{max_rows}"
        if not hasattr(self, "_partitions"):  # a model saved before partitions were kept
            self._partitions = {}
        if key not in self._partitions:
            rows = self._summary_rows(self._x_train.shape[0], max_rows)
            found = estimate_partition(self._per_draw_memberships(self._x_train[rows]), rows,
                                       loss, seed_from(self.random_state))
            self._partitions[key] = (found.rows, found.labels, found.expected_loss)
        rows, labels, expected = self._partitions[key]
        return PartitionEstimate(np.asarray(rows), np.asarray(labels), float(expected), loss)

    def estimate_partition(self, X=None, *, loss: str = "vi",
                           max_rows: int = 1000) -> pd.DataFrame:
        """The partition minimising the posterior expected ``loss`` ('vi': variation of
        information, Wade & Ghahramani 2018; 'binder'), with how surely each row belongs to
        its cluster. No labels are involved, so label switching cannot blur it.

        The partition is searched (SALSO-style, :mod:`bayesgmm.core.salso`) on the training
        rows, or on a random ``max_rows`` of them; every other row, and every row of ``X``,
        joins the cluster it belongs with most.

        Returns
        -------
        DataFrame, one row per training row (or row of ``X``):
            ``cluster`` (0 the largest); ``belonging``: the posterior probability that the
            row shares its component with a member of its cluster, averaged over the members
            (itself left out); ``belonging_lower``/``belonging_upper``: its
            ``credible_level`` interval across draws; ``searched``: the row was in the search.
            ``attrs``: ``loss``, ``expected_loss``, ``n_clusters``, ``n_searched``.
        """
        check_is_fitted(self)
        check_loss(loss)
        estimate = self._partition(loss, max_rows)
        x = self._x_train if X is None else self.validated_input(X)
        means = member_memberships(self._per_draw_memberships(self._x_train[estimate.rows]),
                                   estimate.labels)                             # (S, C, T)
        sizes = np.bincount(estimate.labels)
        member_of = np.full(x.shape[0], -1)
        if X is None:
            member_of[estimate.rows] = estimate.labels
        cluster = np.empty(x.shape[0], np.int64)
        value, lower, upper = (np.empty(x.shape[0]) for _ in range(3))
        with compute_context(np.float64):
            draws, device_means = self.device_draws(SUMMARY_DRAWS), jnp.asarray(means)
            for start in range(0, x.shape[0], _BELONGING_CHUNK):
                rows = slice(start, start + _BELONGING_CHUNK)
                affinity, overlap = (np.asarray(a) for a in cluster_affinity(
                    jnp.asarray(x[rows], jnp.float64), draws, device_means,
                    patterns=missing_patterns(x[rows])))
                per_draw = belonging(affinity, overlap, sizes, member_of[rows])
                average = per_draw.mean(axis=0)
                chosen = np.where(member_of[rows] >= 0, member_of[rows],
                                  np.nan_to_num(average, nan=-1.0).argmax(axis=1))
                picked = per_draw[:, np.arange(len(chosen)), chosen]            # (S, n)
                cluster[rows], value[rows] = chosen, picked.mean(axis=0)
                lower[rows], upper[rows] = self.credible_interval(picked)
        table = pd.DataFrame({"cluster": cluster, "belonging": value, "belonging_lower": lower,
                              "belonging_upper": upper, "searched": member_of >= 0})
        table.attrs.update(loss=loss, expected_loss=estimate.expected_loss,
                           n_clusters=len(sizes), n_searched=len(estimate.rows))
        return table

"""Segment membership with its uncertainty, checked against a known truth
(mirrors ``notebooks/03_segment_uncertainty.ipynb``).

Fits the Bayesian mixture to simulated customers, shows the prior beside the posterior of the
number of segments, lists the ambiguous ones, checks that the stated probabilities are
calibrated, finds the loss-optimal partition with how surely each customer belongs, reports
segment sizes with 90% intervals and exports the assignments and the model.

Run: ``.venv/bin/python examples/segment_uncertainty.py [OUT_DIR]`` (``BAYESGMM_SMALL=1``
for short chains).
"""

import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from bayesgmm.analysis.quality import assignment_calibration
from bayesgmm.app.workflow import Clustering, small_settings
from bayesgmm.base.datasets import make_segments


def main(out_dir: str | None = None) -> None:
    mcmc = small_settings()  # the defaults, or short chains with BAYESGMM_SMALL=1
    customers, true_segment = make_segments(n_samples=600, random_state=1)
    clustering = Clustering(n_components=range(1, 7), bayes="gibbs", standardize=True,
                            random_state=0, bayes_options=mcmc).fit(customers)
    model = clustering.bayes_model_
    print("number of segments, prior and posterior:")
    print(model.n_clusters_table().round(3).to_string())
    assigned = clustering.assign(customers)
    table = pd.concat([customers, assigned], axis=1)
    print(f"ambiguous customers: {assigned['ambiguous'].sum()} of {len(table)}")
    print(table.sort_values("probability").head(5)[
        ["annual_spend", "visits_per_month", "basket_size", "label", "probability",
         "probability_lower", "probability_upper"]].round(3).to_string())

    calibration = assignment_calibration(assigned["probability"], assigned["label"],
                                         true_segment)
    print(f"\naccuracy against the true segments: {calibration.attrs['accuracy']:.3f}")
    print(calibration.round(3).to_string(index=False))

    partition = model.estimate_partition()
    print(f"\nloss-optimal partition: {partition.attrs['n_clusters']} segments, adjusted Rand "
          f"index against the truth {adjusted_rand_score(true_segment, partition['cluster']):.3f}")
    print("customers who belong least surely with their segment:")
    print(partition.sort_values("belonging").head(5).round(3).to_string())

    sizes = model.segment_sizes()
    print("\nsegment shares with 90% intervals:")
    print(sizes[sizes["share"] >= 0.01][["share", "share_lower", "share_upper"]].round(3))

    if out_dir is None:  # nowhere to keep them: show the export in a temporary folder
        with tempfile.TemporaryDirectory() as folder:
            export(table, clustering, Path(folder))
    else:
        export(table, clustering, Path(out_dir))


def export(table: pd.DataFrame, clustering: Clustering, folder: Path) -> None:
    """The assignments as CSV (for the people who act on them) and the model file (for
    ``bayesgmm predict``)."""
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "segments.csv", index=False)
    clustering.save(folder / "model.bgmm")
    print(f"\nwrote segments.csv ({len(table)} rows) and model.bgmm to {folder}")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

"""Anomaly scoring with a saved model: fit once, save, load elsewhere, flag unusual rows.

The threshold is the 1% quantile of the training rows' log densities (``anomaly_quantile``),
stored in the model file with the columns and the standardisation, so new raw rows are scored
exactly as the training rows were. The same job from the shell:
``bayesgmm fit faithful.csv --out result/`` then
``bayesgmm predict result/model.bgmm new.csv --out scored.csv``.
"""

import tempfile
from pathlib import Path

import pandas as pd

import bayesgmm
from bayesgmm.app.workflow import Clustering


def main() -> None:
    data = bayesgmm.load_faithful()
    clustering = Clustering(n_components=range(1, 6), standardize=True, random_state=0).fit(data)
    best = clustering.em_model_
    print(f"selected: {best.covariance_type}, K={best.n_components}; anomaly threshold "
          f"{clustering.anomaly_threshold_:.3f} (log density, 1% training quantile)")
    with tempfile.TemporaryDirectory() as folder:
        path = clustering.save(Path(folder) / "model.bgmm")
        loaded = bayesgmm.load(path)
    new_rows = pd.DataFrame({"eruptions": [2.0, 4.5, 3.2, 1.0],
                             "waiting": [54.0, 81.0, 68.0, 95.0]})
    scored = pd.concat([new_rows, loaded.assign(new_rows)], axis=1)
    print(scored[["eruptions", "waiting", "label", "probability", "log_density",
                  "anomaly"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"anomalies: {int(scored['anomaly'].sum())} of {len(scored)} new rows")


if __name__ == "__main__":
    main()

"""The ``bayesgmm`` command line."""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd

from bayesgmm.bayes.compare import compare_with_em
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.datasets import load_faithful
from bayesgmm.estimator import GaussianMixture
from bayesgmm.selection import select_model


def _format_fit(model: GaussianMixture, data: pd.DataFrame) -> str:
    """A plain-text summary of a fitted mixture in the data's own units."""
    names = list(data.columns)
    labels = model.predict(data)
    sizes = np.bincount(labels, minlength=model.n_components)
    lines = [
        f"GaussianMixture(n_components={model.n_components}, "
        f"covariance_type={model.covariance_type!r}) on {len(data)} rows x {len(names)} "
        f"columns",
        f"converged: {model.converged_} after {model.n_iter_} iterations",
        f"log-likelihood: {model.score(data) * len(data):.3f}  "
        f"(mean {model.score(data):.5f})",
        f"BIC: {model.bic(data):.3f}   AIC: {model.aic(data):.3f}   (lower is better)",
        "",
    ]
    table = pd.DataFrame(model.means_, columns=[f"mean {n}" for n in names])
    table.insert(0, "weight", model.weights_)
    table.insert(1, "size", sizes)
    table.index.name = "component"
    lines += [table.to_string(float_format=lambda v: f"{v:.4f}"), ""]
    for k, cov in enumerate(model._full_covariances()):
        frame = pd.DataFrame(cov, index=names, columns=names)
        lines += [f"covariance of component {k}:",
                  frame.to_string(float_format=lambda v: f"{v:.4f}"), ""]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    data = load_faithful()
    print("Old Faithful (bundled, 272 eruptions): choosing K and the covariance type by BIC\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = select_model(data, n_components=range(1, 10), n_init=5, random_state=args.seed)
    table = result.table
    print(f"Top of the selection table ({len(table)} models, lower BIC is better):")
    shown = table.head(10).drop(columns=["aic", "n_degenerate_inits"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    excluded = int(table["degenerate"].sum())
    if excluded:
        print(f"\n{excluded} models were degenerate in every restart (a component collapsed onto "
              "repeated waiting times) and were excluded.")
    for warning in caught:
        if not issubclass(warning.category, UserWarning):
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    print("\nSelected model\n")
    print(_format_fit(result.best_, data))
    _bayesian_demo(data, args.seed)
    return 0


def _bayesian_demo(data: pd.DataFrame, seed: int) -> None:
    """The Bayesian half of the demo: posterior over K, uncertain points, diagnostics, and
    the comparison with the BIC-selected EM fit."""
    print("Bayesian mixture: Dirichlet-process weights (T=10), NUTS, 2 chains x "
          "(500 warm-up + 500 draws)\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        model = BayesianGaussianMixture(10, random_state=seed).fit(data)
    for warning in caught:
        print(f"warning: {warning.message}")
    print("Posterior over the number of occupied clusters:")
    print(model.n_clusters_posterior().to_frame().T.to_string(
        float_format=lambda v: f"{v:.3f}"), "\n")
    print("Segment sizes (share of points, 90% credible intervals):")
    sizes = model.segment_sizes()
    print(sizes[sizes["share"] >= 0.01].to_string(float_format=lambda v: f"{v:.3f}"), "\n")
    uncertain = model.assignment_uncertainty().sort_values("probability").head(10)
    print("The ten least certain assignments:")
    print(pd.concat([data.loc[uncertain.index], uncertain], axis=1).to_string(
        float_format=lambda v: f"{v:.3f}"), "\n")
    print("Diagnostics (label-invariant quantities first):")
    print(model.diagnostics().to_string(float_format=lambda v: f"{v:.3f}"), "\n")
    n_div = int(model.sample_stats_["diverging"].sum())
    print(f"divergent transitions: {n_div}\n")
    print("EM (BIC) vs Bayesian, both fitted on 75% of the rows, scored on the other 25%:")
    table = compare_with_em(data, BayesianGaussianMixture(10, random_state=seed),
                            random_state=seed)
    print(table.T.to_string(float_format=lambda v: f"{v:.3f}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesgmm",
                                     description="Gaussian mixture clustering.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="select and fit a mixture for the bundled Old Faithful data, and print it")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:
        print(f"bayesgmm: error: {err}", file=sys.stderr)
        return 2

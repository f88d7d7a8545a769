"""The ``bayesgmm`` command line."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from bayesgmm.datasets import load_faithful
from bayesgmm.estimator import GaussianMixture


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
    model = GaussianMixture(n_components=2, covariance_type="full", n_init=5,
                            random_state=args.seed).fit(data)
    print("Old Faithful (bundled): EM fit with bayesgmm\n")
    print(_format_fit(model, data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesgmm",
                                     description="Gaussian mixture clustering.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit the bundled Old Faithful data and print it")
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

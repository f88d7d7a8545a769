"""The ``bayesgmm`` command line: ``demo``, ``fit``, ``predict`` and ``report``.

Errors the user can fix (a missing file, an unknown or non-numeric column, empty data, NaN,
a damaged model file) print one line, ``bayesgmm: error: ...``, and exit with status 2; no
traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.analysis.compare import compare_with_em
from bayesgmm.app.workflow import BAYES_METHODS, Clustering, small_settings
from bayesgmm.base.datasets import load_faithful
from bayesgmm.base.io import ModelFileError, load  # the workflow's classes are imported
from bayesgmm.engine.bayes.cluster_prior import side_by_side
from bayesgmm.estimators.bayesian import BayesianGaussianMixture
from bayesgmm.estimators.gaussian import GaussianMixture
from bayesgmm.estimators.selection import COVARIANCE_TYPES


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
    for k, cov in enumerate(model.full_covariances()):
        frame = pd.DataFrame(cov, index=names, columns=names)
        lines += [f"covariance of component {k}:",
                  frame.to_string(float_format=lambda v: f"{v:.4f}"), ""]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    data = load_faithful()
    print("Old Faithful (bundled, 272 eruptions): choosing K and the covariance type by BIC, "
          "then a Bayesian mixture with a prior on the number of clusters\n")
    clustering = Clustering(bayes="gibbs", random_state=args.seed, progress_bar=not args.quiet,
                            bayes_options=small_settings("gibbs") or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clustering.fit(data)
    table = clustering.selection_.table
    print(f"Top of the selection table ({len(table)} models, lower BIC is better):")
    shown = table.head(10).drop(columns=["aic", "n_degenerate_inits"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    excluded = int(table["degenerate"].sum())
    if excluded:
        print(f"\n{excluded} models were degenerate in every restart (a component collapsed onto "
              "repeated waiting times) and were excluded.")
    print("\nSelected model\n")
    print(_format_fit(clustering.em_model_, data))
    _bayesian_demo(data, clustering, args.seed)
    out = Path(args.out)
    write_outputs(clustering, data, out, quiet=True)
    print(f"\nThe report (open it in a browser): {(out / 'report.html').resolve()}")
    print("Also written there: assignments.csv, model.bgmm and selection.csv")
    return 0


def _bayesian_demo(data: pd.DataFrame, clustering: Clustering, seed: int) -> None:
    """The Bayesian half of the demo: posterior over K, uncertain points, diagnostics, and
    the comparison with the BIC-selected EM fit."""
    model = clustering.bayes_model_
    print(f"Bayesian mixture: {model.describe()}\n")
    for message in clustering.warnings_:
        if "degenerate in every restart" not in message:
            print(f"warning: {message}")
    posterior = model.n_clusters_posterior()
    prior = model.n_clusters_prior()
    print("Posterior over the number of occupied clusters, beside the prior the model implies "
          f"for {len(data)} rows:")
    print(side_by_side(prior, posterior).to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"mode {posterior.attrs['mode']}; {model.credible_level:.0%} credible set "
          f"{posterior.attrs['credible_set']}\n")
    partition = model.estimate_partition()
    sizes = partition["cluster"].value_counts().sort_index()
    print("The partition minimising the posterior expected variation of information "
          f"(label-free; expected loss {partition.attrs['expected_loss']:.3f} bits): "
          f"{len(sizes)} clusters of {', '.join(str(n) for n in sizes)} rows.")
    least = partition.sort_values("belonging").head(5)
    print("The five rows that belong least surely with their cluster (probability of sharing "
          "a cluster with its members, 90% interval):")
    print(pd.concat([data.loc[least.index], least.drop(columns="searched")], axis=1).to_string(
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
    if "diverging" in model.sample_stats_:
        print(f"divergent transitions: {int(model.sample_stats_['diverging'].sum())}\n")
    else:
        info = model.inference_info_
        print(f"split-merge acceptance: splits {info['split_acceptance']:.3f}, merges "
              f"{info['merge_acceptance']:.3f}\n")
    print("EM (BIC) vs Bayesian, both fitted on 75% of the rows, scored on the other 25%:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare_with_em(data, BayesianGaussianMixture(
            10, random_state=seed, progress_bar=False, **small_settings("gibbs")),
            random_state=seed)
    print(table.T.to_string(float_format=lambda v: f"{v:.3f}"))


def read_table(path: str) -> pd.DataFrame:
    """A CSV (``.csv``, ``.tsv``, ``.txt`` or anything else) or Parquet (``.parquet``,
    ``.pq``) file as a DataFrame."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"data file {path!r} does not exist")
    try:
        if source.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(source)
        return pd.read_csv(source, sep="\t" if source.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise ValueError(f"data file {path!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path!r} as a table: {err}") from None
    except ImportError as err:
        raise ValueError(f"cannot read Parquet file {path!r}: {err}") from None


def _components(text: str):
    """``auto`` -> 1..9, ``N`` -> N, ``MIN:MAX`` -> MIN..MAX."""
    try:
        if text == "auto":
            return range(1, 10)
        if ":" in text:
            low, high = (int(v) for v in text.split(":"))
            if not 1 <= low <= high:
                raise ValueError
            return range(low, high + 1)
        value = int(text)
        if value < 1:
            raise ValueError
        return value
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --k {text!r}: use auto, a number >= 1 or MIN:MAX") from None


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--columns is empty")
    return names


def write_outputs(clustering: Clustering, data: pd.DataFrame, out: Path,
                  quiet: bool = False) -> None:
    """``assignments.csv``, ``model.bgmm``, ``selection.csv`` and ``report.html`` in ``out``."""
    from bayesgmm.app.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    assignments = pd.concat([data, clustering.assign(data)], axis=1)
    assignments.to_csv(out / "assignments.csv", index=False)
    clustering.save(out / "model.bgmm")
    clustering.selection_.table.to_csv(out / "selection.csv", index=False)
    write_report(clustering, data, out)
    if not quiet:
        print(f"wrote {out / 'assignments.csv'}, {out / 'model.bgmm'}, "
              f"{out / 'selection.csv'} and {out / 'report.html'}")


def _fit_quietly(clustering: Clustering, data: pd.DataFrame) -> Clustering:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clustering.fit(data)
    for message in clustering.warnings_:
        print(f"warning: {message}", file=sys.stderr)
    return clustering


def run_fit(args: argparse.Namespace) -> int:
    data = read_table(args.data)
    clustering = Clustering(args.columns, args.k, covariance_type=args.covariance,
                            criterion=args.criterion, bayes=args.bayes,
                            standardize=args.standardize, random_state=args.seed,
                            progress_bar=not args.quiet, missing=args.missing)
    _fit_quietly(clustering, data)
    if not args.quiet:
        if clustering.skipped_columns_:
            print(f"not used (not numeric): {', '.join(clustering.skipped_columns_)}")
        best = clustering.em_model_
        print(f"selected by {args.criterion.upper()}: {best.covariance_type}, "
              f"K={best.n_components} ({len(clustering.selection_.table)} models compared)")
        if clustering.bayes_model_ is not None:
            posterior = clustering.bayes_model_.n_clusters_posterior()
            print("posterior over the number of clusters: " + ", ".join(
                f"{k}: {p:.2f}" for k, p in posterior.items() if p >= 0.005))
    write_outputs(clustering, data, Path(args.out), args.quiet)
    return 0


def _load_clustering(path: str) -> Clustering:
    model = load(path)
    if not isinstance(model, Clustering):
        raise ModelFileError(f"{path} holds a {type(model).__name__}, not a model written by "
                             "'bayesgmm fit'")
    return model


def run_predict(args: argparse.Namespace) -> int:
    clustering = _load_clustering(args.model)
    data = read_table(args.data)
    out = Path(args.out)
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([data, clustering.assign(data)], axis=1).to_csv(out, index=False)
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bayesgmm.app.report import write_report

    clustering = _load_clustering(args.model)
    path = write_report(clustering, read_table(args.data), Path(args.out))
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def _model_and_data(command: argparse.ArgumentParser) -> None:
    command.add_argument("model", metavar="MODEL", help="model.bgmm written by 'bayesgmm fit'")
    command.add_argument("data", metavar="DATA", help="CSV or Parquet file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesgmm", description="Gaussian mixture clustering: EM with BIC/ICL model "
        "selection, and Bayesian mixtures with uncertainty.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="select and fit a mixture for the bundled Old Faithful data, and print it",
        description="Select K and the covariance type by BIC on the bundled Old Faithful data, "
        "fit the Bayesian mixture (Gibbs sampler), print the results and write the HTML "
        "report.")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--out", metavar="DIR", default="bayesgmm-demo",
                      help="where to write report.html, assignments.csv, model.bgmm and "
                      "selection.csv (default: bayesgmm-demo)")
    demo.set_defaults(run=run_demo)

    fit = commands.add_parser(
        "fit", help="cluster the rows of a CSV or Parquet file",
        description="Choose K and the covariance type by a criterion, optionally fit a "
        "Bayesian mixture, and write assignments.csv, model.bgmm, selection.csv and "
        "report.html into --out.")
    fit.add_argument("data", metavar="DATA", help="CSV (.csv, .tsv) or Parquet (.parquet) file")
    fit.add_argument("--columns", type=_columns, metavar="a,b,...",
                     help="columns to cluster on (default: every numeric column)")
    fit.add_argument("--k", type=_components, default=range(1, 10), metavar="auto|N|MIN:MAX",
                     help="number of clusters, or the range to choose from (default auto = 1:9)")
    fit.add_argument("--covariance", default="auto", choices=("auto", *COVARIANCE_TYPES),
                     help="covariance type, or auto to choose (default auto)")
    fit.add_argument("--criterion", default="bic", choices=("bic", "icl", "aic"),
                     help="selection criterion (default bic)")
    fit.add_argument("--bayes", default="none", choices=BAYES_METHODS,
                     help="also fit the Bayesian mixture by variational inference or NUTS "
                     "(default none)")
    fit.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=False,
                     help="scale each column to unit variance before clustering (default: no)")
    fit.add_argument("--missing", default="error", choices=("error", "marginalize"),
                     help="empty cells (NaN): 'error' refuses them (default); 'marginalize' "
                          "keeps the rows and fits by exact EM over the missing values")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--out", required=True, metavar="DIR", help="output directory")
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser(
        "predict", help="assign new rows with a saved model",
        description="Write the rows of DATA with label, per-cluster probabilities, "
        "uncertainty, log density and an anomaly flag (log density below the training "
        "quantile stored with the model).")
    _model_and_data(predict)
    predict.add_argument("--out", required=True, metavar="FILE", help="output CSV file")
    predict.set_defaults(run=run_predict)

    report = commands.add_parser(
        "report", help="write the HTML report of a saved model on some data",
        description="Write report.html for MODEL evaluated on DATA into --out.")
    _model_and_data(report)
    report.add_argument("--out", required=True, metavar="DIR", help="output directory")
    report.set_defaults(run=run_report)
    for command in (demo, fit, predict, report):
        command.add_argument("--quiet", action="store_true",
                             help="no progress bars or messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:
        print(f"bayesgmm: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())

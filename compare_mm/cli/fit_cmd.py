"""``compare-mm fit``: fit one formula to a CSV file with one backend, or with all of them side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError, OptionError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit an lme4 formula to a CSV file",
                       description="Fit a linear mixed model given as an lme4 formula to a CSV file.")
    p.add_argument("--data", required=True, metavar="FILE.csv", help="CSV file with a header row")
    p.add_argument("--formula", required=True, help='lme4 formula, e.g. "Reaction ~ Days + (Days || Subject)"')
    p.add_argument("--method", default="REML", type=str.upper, choices=["REML", "ML"])
    p.add_argument("--backend", default="reml", help="reml | statsmodels | pymc | all (default reml)")
    p.add_argument("--json", action="store_true", help="print the FitResult JSON (a list with --backend all)")
    p.add_argument("--dropna", action="store_true", help="drop rows with missing values in used columns")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    g = p.add_argument_group("PyMC options")
    g.add_argument("--draws", type=int, help="posterior draws per chain (default from config/defaults.yaml)")
    g.add_argument("--tune", type=int, help="tuning steps per chain")
    g.add_argument("--chains", type=int, help="number of chains")
    g.add_argument("--parameterisation", help="auto (default: marginal for one random-effects term with at most "
                   "two effects per level, else noncentred) | noncentred | centred | marginal")
    g.add_argument("--target-accept", type=float, dest="target_accept", help="NUTS target acceptance rate")
    g.add_argument("--until-converged", nargs="?", const="true", dest="until_converged", metavar="JSON",
                   help='more rounds of chains until R-hat and ESS meet the targets: bare flag for the '
                        'defaults, or JSON such as \'{"max_draws": 4000, "rhat": 1.01, "ess": 400}\'')
    g.add_argument("--sampler", help="nutpie | pymc | quadrature (exact posterior by integration; it ignores "
                                     "draws/tune/chains, with a warning)")
    g.add_argument("--prior", help='priors as JSON, e.g. \'{"sd": {"half_normal": 10}}\', or a prior preset\'s name '
                   '(config/priors/NAME.yaml, e.g. pc_prior; as in a study\'s fit key prior:)')
    t = p.add_argument_group("inference")
    t.add_argument("--tests", action="store_true", help="all tests and intervals that apply")
    t.add_argument("--profile", action="store_true", help="profile intervals (lme4's convention: ML deviance)")
    t.add_argument("--profile-reml", action="store_true", help="profile intervals on the REML deviance")
    t.add_argument("--bootstrap", type=count_type(0), default=0, metavar="N", help="parametric bootstrap with N refits")
    t.add_argument("--seed", type=count_type(0), default=None, help="seed for simulation-based tests and sampling (≥ 0)")
    p.set_defaults(func=run)


def count_type(low: int):
    """An argparse ``type``: an integer ≥ ``low`` (argparse then reports a bad value in one line)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


def read_csv(path: str) -> pd.DataFrame:
    """Read a CSV data file, with a one-sentence DataError when it cannot be read."""
    file = Path(path)
    if file.is_dir():
        raise DataError(f"Data file '{path}' is a directory; give a CSV file.")
    if not file.is_file():
        raise DataError(f"Data file '{path}' does not exist.")
    try:
        return pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"Data file '{path}' is not a readable CSV file ({str(exc).splitlines()[0]}).") from None


def _sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key in ("draws", "tune", "chains", "parameterisation", "sampler", "seed", "target_accept"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    if getattr(args, "until_converged", None) is not None:
        try:
            opts["until_converged"] = json.loads(args.until_converged)
        except json.JSONDecodeError:
            raise OptionError(f"--until-converged takes no value or JSON such as '{{\"max_draws\": 4000}}', "
                              f"got {args.until_converged!r}.") from None
    text = (args.prior or "").strip()
    if text and text[:1] not in "{[\"" and "/" not in text and " " not in text:    # a preset name, as in a study
        from ..study.presets import load_preset  # deferred: keeps CLI start-up fast
        opts["prior"] = load_preset("priors", text, "--prior")[0]
    elif args.prior:
        try:
            opts["prior"] = json.loads(args.prior)
        except json.JSONDecodeError:
            raise OptionError(f"--prior must be JSON, e.g. '{{\"sd\": {{\"half_normal\": 10}}}}', or a prior "
                              f"preset's name, got {args.prior!r}.") from None
    return opts


def run(args: argparse.Namespace) -> int:
    from .. import api  # deferred: keeps CLI start-up fast
    from ..backends.base import backend_names, get_backend  # deferred: keeps CLI start-up fast
    from ..results.summary import format_summary, side_by_side

    data = read_csv(args.data)
    data.attrs["name"] = Path(args.data).name          # the summary's "Data:" line
    if args.backend.lower() == "all":
        plan = [("reml", "REML"), ("reml", "ML"), ("statsmodels", args.method), ("pymc", args.method)]
    else:
        plan = [(args.backend.lower(), args.method)]
        if plan[0][0] not in backend_names():
            raise OptionError(f"Unknown backend {args.backend!r}; choose one of {', '.join(backend_names())} "
                              "or all (every backend side by side).")
    results = []
    for backend, method in plan:
        be = get_backend(backend)
        opts: dict[str, Any] = {"level": args.level}
        if be.needs_seed:  # a sampler: the sampler options and --seed are its own
            opts.update(_sampler_options(args))
        res = api.fit(args.formula, data, backend=backend, method=method, dropna=args.dropna, **opts)
        if not be.posterior and (args.tests or args.profile or args.profile_reml or args.bootstrap):
            res = _with_inference(args, res)
        results.append(res)
    if args.json:
        payload = [r.to_dict() for r in results] if len(results) > 1 else results[0].to_dict()
        print(json.dumps(payload, indent=1))
    elif len(results) > 1:
        print(side_by_side(results))
    else:
        print(format_summary(results[0]))
    return 0


def _with_inference(args: argparse.Namespace, res):
    from ..inference import run_inference  # deferred: keeps CLI start-up fast

    profile = "reml" if args.profile_reml else ("ml" if args.profile or args.tests else None)
    return run_inference(res, tests=args.tests, profile=profile,
                         bootstrap=args.bootstrap, seed=args.seed, level=args.level)

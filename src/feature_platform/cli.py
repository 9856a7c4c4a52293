"""``feature-platform``: the project's own commands (thin wrappers, JSON output).

Each command is one ``@command`` naming its help and its options (``arg(...)``
specs, or a function for groups and sub-commands) right above its handler.
Imports of feast/sklearn happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from feature_platform.errors import BadInput, PlatformError
from feature_platform.sample_data import MIN_DAYS  # stdlib-only at import

__all__ = ["main"]


Handler = Callable[[argparse.Namespace], int]
Arg = tuple[tuple[str, ...], dict[str, Any]]  # add_argument's flags and keywords
Option = Arg | Callable[[argparse.ArgumentParser], None]
# name -> (help, options, handler), in the order --help lists them
_COMMANDS: dict[str, tuple[str, tuple[Option, ...], Handler]] = {}


def arg(*flags: str, **kwargs: Any) -> Arg:
    """One ``add_argument`` call, declared in a command's ``@command``."""
    return flags, kwargs


def command(name: str, help_: str, *options: Option) -> Callable[[Handler], Handler]:
    """Register a subcommand: its help, its options (declared right above the
    handler) and the handler."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = (help_, options, handler)
        return handler

    return register


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _done(obj: Any) -> int:
    """Print a command's JSON result; exit status 0."""
    _print(obj)
    return 0


def _store(args: argparse.Namespace, *, applied: bool = True):
    """The profile's store; with ``applied`` (every command that reads the
    definitions) a registry that was never applied is a clear error."""
    from feature_platform.profiles import get_store, require_applied

    store = get_store(args.profile)
    if applied:
        require_applied(store)
    return store


def _when(args: argparse.Namespace, option: str) -> datetime | None:
    """The UTC time given as ``--<option>`` (None when not given)."""
    from feature_platform.utc import parse_utc

    text = getattr(args, option.replace("-", "_"))
    return parse_utc(text, f"--{option}") if text else None


def _checked(
    convert: Callable[[str], Any], ok: Callable[[Any], bool], what: str
) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert(text)`` when ``ok`` (argparse names the
    option in its error), else "must be <what>"."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


def _at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum``."""
    return _checked(int, lambda v: v >= minimum, f"an integer >= {minimum}")


# A finite number > 0.
_positive = _checked(float, lambda v: v > 0 and math.isfinite(v), "a number > 0")


# Options several commands share.
VIEWS = arg("--views", nargs="+", help="feature views (default: all online)")
START = arg("--start")
END_NOW = arg("--end", help="default now (UTC)")
VERSION = arg("--version", default="champion", help="alias or version number")
CUSTOMER_IDS = arg("--customer-id", type=int, nargs="+")
# The request-time input of the on-demand view ``checkout_value``.
CART_VALUES = arg(
    "--cart-value",
    type=float,
    nargs="+",
    help="request data of a model on churn_prediction_service_v2: the cart "
    "value (EUR) at checkout, one per --customer-id",
)


@command(
    "generate",
    "Generate deterministic sample sources + labels.",
    arg("--customers", type=_at_least(1), default=10_000),
    arg("--drivers", type=_at_least(1), default=1_000),
    arg(
        "--days",
        type=_at_least(MIN_DAYS),
        default=90,
        help=f"days of history (>= {MIN_DAYS})",
    ),
    arg("--seed", type=_at_least(0), default=42),
    arg("--end", help="newest timestamp (UTC ISO); default now"),
    arg("--out", help="output directory; default the profile's data dir"),
)
def cmd_generate(args: argparse.Namespace) -> int:
    from feature_platform.profiles import data_dir
    from feature_platform.sample_data import SampleSpec, write_sample_data

    spec = SampleSpec(
        customers=args.customers,
        drivers=args.drivers,
        days=args.days,
        seed=args.seed,
        end=_when(args, "end"),
    )
    return _done(write_sample_data(args.out or data_dir(), spec))


@command(
    "load",
    "Load the parquet sources into the profile's BigQuery source tables "
    "(created partitioned by event day, clustered by entity key; rows "
    "replaced). Run before the first apply on the production profile.",
    arg(
        "--from",
        dest="source",
        help="directory of <table>.parquet files; default the profile's data dir",
    ),
)
def cmd_load(args: argparse.Namespace) -> int:
    from feature_platform.bigquery import load_sources

    return _done(load_sources(_store(args, applied=False), data=args.source))


@command("plan", "Show what apply would change in the registry.")
def cmd_plan(args: argparse.Namespace) -> int:
    from feature_platform.definitions import plan_definitions

    print(plan_definitions(_store(args, applied=False)) or "no changes")
    return 0


@command(
    "apply",
    "Apply feature_repo/ definitions to the SQL registry; refuses breaking "
    "changes to what the registry holds (docs/governance.md).",
    arg(
        "--allow-breaking",
        action="store_true",
        help="apply breaking changes anyway (needs --reason; audit-logged)",
    ),
    arg("--reason", help="why the breaking change is safe, who agreed"),
)
def cmd_apply(args: argparse.Namespace) -> int:
    from feature_platform.definitions import apply_definitions

    result = apply_definitions(
        _store(args, applied=False),
        allow_breaking=args.allow_breaking,
        reason=args.reason,
    )
    print(result.registry_changes, file=sys.stderr)
    return _done(result.summary())


@command(
    "materialize",
    "Materialize into the online store: incremental up to --end, or an "
    "explicit --start/--end window.",
    START,
    arg("--end", help="default now (UTC); never in the future"),
    VIEWS,
    arg(
        "--skip-validation",
        action="store_true",
        help="write without validating the sources first (logged as a warning)",
    ),
)
def cmd_materialize(args: argparse.Namespace) -> int:
    from feature_platform.materialize import materialize_incremental, materialize_window

    end, start = _when(args, "end"), _when(args, "start")
    if start is not None and end is None:
        raise BadInput("--start needs --end (an explicit UTC window)")
    validate = False if args.skip_validation else None  # None: the engine's config
    store = _store(args)
    if start is not None and end is not None:
        result = materialize_window(
            store, start, end, views=args.views, validate=validate
        )
    else:
        result = materialize_incremental(
            store, end, views=args.views, validate=validate
        )
    return _done(result)


def _feast_command(feast_args: list[str]) -> str | None:
    """The subcommand of a ``feast`` command line (after its global options)."""
    with_value = {"-c", "--chdir", "-f", "--feature-store-yaml", "--log-level"}
    words = iter(feast_args)
    for word in words:
        if word in with_value:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


@command(
    "feast",
    "Run the plain feast CLI on the profile (its yaml, .env defaults, repo dir), "
    "e.g. feature-platform --profile services feast plan",
    arg("feast_args", nargs=argparse.REMAINDER, help="feast arguments"),
)
def cmd_feast(args: argparse.Namespace) -> int:
    import os

    from feature_platform.profiles import feast_cli

    argv, env, cwd = feast_cli(args.profile, args.feast_args)
    if _feast_command(args.feast_args) == "apply":  # the breaking-change guard first
        from feature_platform.definitions import check_apply

        check_apply(_store(args, applied=False))
    os.chdir(cwd)
    os.execvpe(argv[0], argv, env)  # replaces this process: no return
    return 0  # pragma: no cover


@command(
    "train",
    "PIT training set -> GBC -> metrics -> MLflow run + registered model "
    "version (alias champion if ROC AUC >= --threshold).",
    arg("--labels", help="parquet of entity rows with the label"),
    arg("--model-dir", help="also write the model here (MLflow format)"),
    arg("--feature-service", default="churn_prediction_service"),
    START,
    arg("--end"),
    arg("--n-estimators", type=_at_least(1), default=200),
    arg("--threshold", type=float, default=0.75, help="publish gate"),
)
def cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from feature_platform.profiles import data_dir
    from feature_platform.training import run_training

    path = Path(args.labels) if args.labels else data_dir() / "churn_labels.parquet"
    if not path.is_file():
        raise BadInput(f"--labels {path} is not a file (generate writes the default)")
    labels = pd.read_parquet(path)
    result = run_training(
        _store(args),
        labels,
        model_dir=args.model_dir,
        feature_service=args.feature_service,
        start=_when(args, "start"),
        end=_when(args, "end"),
        n_estimators=args.n_estimators,
        threshold=args.threshold,
    )
    return _done(result)


@command(
    "predict",
    "Churn probability for customers: the registered model (alias or version) "
    "over online features read through its feature service.",
    arg("--model", default="churn_prediction_service"),
    VERSION,
    CUSTOMER_IDS,
    CART_VALUES,
)
def cmd_predict(args: argparse.Namespace) -> int:
    from feature_platform.training import load_registered_model, predict_online

    if not args.customer_id:
        raise BadInput("give --customer-id (one or more)")
    store = _store(args)
    bundle = load_registered_model(args.model, args.version, store=store)
    rows: list[dict[str, Any]] = [{"customer_id": c} for c in args.customer_id]
    if args.cart_value is not None:
        if len(args.cart_value) != len(rows):
            raise BadInput(
                f"give one --cart-value per --customer-id ({len(rows)}), "
                f"got {len(args.cart_value)}"
            )
        for row, cart in zip(rows, args.cart_value, strict=True):
            row["cart_value"] = cart
    return _done(
        {
            "model": f"{args.model} {args.version}",
            "feature_service": bundle.metadata["feature_service"],
            "predictions": predict_online(store, bundle, rows),
        }
    )


def _one_of(*options: Arg) -> Callable[[argparse.ArgumentParser], None]:
    """Options of which exactly one must be given."""

    def add(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group(required=True)
        for flags, kwargs in options:
            group.add_argument(*flags, **kwargs)

    return add


@command(
    "lineage",
    "Model lineage (MLflow registry): which registered models consume a "
    "feature, view or service (exit 1: none), or what a model version needs.",
    _one_of(
        arg(
            "--consumers-of",
            metavar="REF",
            help="feature ref (customer_stats:lifetime_value), view or service",
        ),
        arg("--model", help="registered model name"),
    ),
    VERSION,
    arg("--json", action="store_true", help="full records"),
)
def cmd_lineage(args: argparse.Namespace) -> int:
    from feature_platform.lineage import model_lineage, models_consuming

    store = _store(args)
    if args.model:
        _print(model_lineage(args.model, args.version, store=store).as_dict())
        return 0
    found = models_consuming(args.consumers_of, store=store)
    _print([m.as_dict() for m in found] if args.json else [str(m) for m in found])
    return 0 if found else 1


@command(
    "online",
    "Read online features for entities.",
    _one_of(
        arg("--feature-service"),
        arg("--features", nargs="+", help="view:feature references"),
    ),
    CUSTOMER_IDS,
    CART_VALUES,
    arg("--driver-id", type=int, nargs="+"),
)
def cmd_online(args: argparse.Namespace) -> int:
    from feature_platform.online import read_online

    rows: list[dict[str, Any]] = []
    for key, values in (
        ("customer_id", args.customer_id),
        ("driver_id", args.driver_id),
    ):
        for i, value in enumerate(values or []):
            if i >= len(rows):
                rows.append({})
            rows[i][key] = value
    if not rows:
        raise BadInput("entity_rows is empty: give --customer-id and/or --driver-id")
    return _done(
        read_online(
            _store(args),
            rows,
            feature_service=args.feature_service,
            features=args.features,
        )
    )


def _serve_options(p: argparse.ArgumentParser) -> None:
    from feature_platform.server import add_serve_arguments  # stdlib-only module

    add_serve_arguments(p)


@command(
    "serve",
    "HTTP feature server (Feast's app + request validation) on the profile.",
    _serve_options,
)
def cmd_serve(args: argparse.Namespace) -> int:
    from feature_platform.server import serve

    return serve(args)


@command(
    "recover",
    "Check the online store against the offline store (sampled entities) and "
    "re-materialize the last ttl window of every view with missing or stale "
    "values (e.g. after a Redis restart). Exit 1 if still unhealthy.",
    arg("--end", help="end of the ttl window (UTC ISO); default now"),
    VIEWS,
    arg("--sample", type=_at_least(1), default=200, help="entities per view"),
    arg("--force", action="store_true", help="re-materialize every view"),
    arg("--check", action="store_true", help="only report health"),
)
def cmd_recover(args: argparse.Namespace) -> int:
    from feature_platform.recovery import Health, Recovery, online_health, recover

    end = _when(args, "end")
    store = _store(args)
    report: Health | Recovery
    if args.check:
        report = online_health(store, end=end, views=args.views, sample=args.sample)
    else:
        report = recover(
            store, end=end, views=args.views, sample=args.sample, force=args.force
        )
    _print(report)
    return 0 if report["healthy"] else 1


@command(
    "check",
    "Governance check: ttl >= 3x schedule, breaking changes vs "
    "feature_repo/schema.lock.json (and the registry with --registry), pii "
    "tags. Exit 1 on any error.",
    arg("--repo", help="feature repo directory (default feature_repo/)"),
    arg("--registry", action="store_true", help="also compare with the registry"),
    arg(
        "--data",
        action="store_true",
        help="also read data: UTC source timestamps, pii served unmasked online",
    ),
    arg(
        "--update-lock",
        action="store_true",
        help="accept the current definitions: rewrite schema.lock.json first",
    ),
    arg("-v", "--verbose", action="store_true", help="show info lines"),
)
def cmd_check(args: argparse.Namespace) -> int:
    from feature_platform.governance import run_check, write_lock
    from feature_platform.profiles import get_store, repo_dir

    repo = args.repo or repo_dir()
    if args.update_lock:
        write_lock(repo)
        print(f"wrote {repo}/schema.lock.json", file=sys.stderr)
    store = get_store(args.profile, repo=repo) if (args.registry or args.data) else None
    report = run_check(repo, store=store, data=args.data)
    for f in report.findings:
        if f.severity != "info" or args.verbose:
            print(
                f"{f.severity.upper():7} {f.rule:8} {f.subject}: {f.message}",
                file=sys.stderr,
            )
    _print(report.summary())
    return 0 if report.ok else 1


@command(
    "audit",
    "List the audit log of applies (newest first).",
    arg("--limit", type=_at_least(1), default=20),
    arg("--project", help="default: the profile's project"),
)
def cmd_audit(args: argparse.Namespace) -> int:
    from feature_platform.audit import list_audit

    return _done(
        list_audit(_store(args, applied=False), limit=args.limit, project=args.project)
    )


@command(
    "monitor",
    "Freshness, served null rate, drift (PSI) and read latency; writes "
    "monitor.json + monitor.html (and a timestamped copy under history/).",
    arg("--out", help="report directory (default artifacts/monitoring)"),
    arg(
        "--server-url",
        help="feature server whose /metrics give served null rates and latency "
        "(default $FP_MONITOR_SERVER_URL; without one: probe reads)",
    ),
    arg("--notify", action="store_true", help="post the alerts to the webhook"),
    arg("--reference-start", help="default: the model's training window"),
    arg("--reference-end"),
    arg("--current-start", help="default: the last 24 hours"),
    arg("--current-end"),
    arg("--views", nargs="+", help="feature views, on-demand ones too (default: all)"),
    arg("--sample", type=_at_least(1), default=200, help="entities read per view"),
    arg("--latency-reads", type=_at_least(1), default=100, help="timed reads per view"),
    arg("--fail-on-alert", action="store_true", help="exit 1 when anything is flagged"),
)
def cmd_monitor(args: argparse.Namespace) -> int:
    from feature_platform.monitoring import Window, monitor_and_publish

    def window(name: str) -> Window | None:
        start, end = _when(args, f"{name}-start"), _when(args, f"{name}-end")
        if start is None and end is None:
            return None
        if start is None or end is None:
            raise BadInput(f"--{name}-start needs --{name}-end and vice versa")
        return Window(start, end, "--" + name)

    summary = monitor_and_publish(
        _store(args),
        out_dir=args.out,
        notify=args.notify,
        reference=window("reference"),
        current=window("current"),
        views=args.views,
        sample=args.sample,
        latency_reads=args.latency_reads,
        server_url=args.server_url,
    )
    _print(summary)
    return 1 if (args.fail_on_alert and not summary["ok"]) else 0


@command(
    "validate",
    "Validate source data (Great Expectations suites) for a window; "
    "prints a table, exits 1 on failure.",
    arg("--start", help="default: --end minus --hours"),
    END_NOW,
    arg("--hours", type=_positive, default=4, help="window length (default 4)"),
    VIEWS,
    arg("--json", action="store_true", help="print the JSON summary"),
)
def cmd_validate(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from feature_platform.utc import utc_now
    from feature_platform.validation import format_failures, validate_sources

    end = _when(args, "end") or utc_now()
    start = _when(args, "start") or end - timedelta(hours=args.hours)
    summary = validate_sources(
        _store(args), start=start, end=end, views=args.views, raise_on_failure=False
    )
    if args.json:
        _print(summary)
        return 0 if summary["success"] else 1
    window = summary.get("window", {})
    print(f"window {window.get('start')} .. {window.get('end')}")
    for name, report in summary["sources"].items():
        status = "ok" if report["success"] else f"FAILED ({len(report['failures'])})"
        print(
            f"  {name:<20} {report['rows_checked']:>8} rows  "
            f"{report['evaluated']:>3} expectations  {status}"
        )
    if not summary["success"]:
        print("\n" + format_failures(summary["failures"]))
    return 0 if summary["success"] else 1


def _catalog_search(p: argparse.ArgumentParser) -> None:
    csub = p.add_subparsers(dest="catalog_command")
    s = csub.add_parser(
        "search",
        help="features whose name, description or tag contains TEXT (exit 1: none)",
    )
    s.add_argument("text", metavar="TEXT")
    # SUPPRESS: `catalog --json search X` keeps the parent's --json.
    s.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )


@command(
    "catalog",
    "Feature catalog: every feature view and feature with owner, team, "
    "description, tags, dtype, ttl, cadence, watermark, freshness, feature "
    "services and consuming models; `catalog search TEXT` finds features.",
    arg("--json", action="store_true", help="print JSON"),
    _catalog_search,
)
def cmd_catalog(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from feature_platform.catalog import (
        build_catalog,
        format_catalog,
        format_matches,
        search,
    )

    text = getattr(args, "text", None)
    if text is not None and not text.strip():
        raise BadInput("catalog search: TEXT is empty (a name, a word or a tag)")
    catalog = build_catalog(_store(args))
    if text is None:
        if args.json:
            _print(catalog.as_dict())
        else:
            print(format_catalog(catalog))
        return 0
    matches = search(catalog, text)
    if args.json:
        _print([asdict(m) for m in matches])
    else:
        print(format_matches(catalog, matches, text))
    return 0 if matches else 1


@command(
    "demo",
    "Run the whole job end to end on the profile.",
    arg("--json", action="store_true", help="also print the full summary"),
)
def cmd_demo(args: argparse.Namespace) -> int:
    from feature_platform.demo import run_demo

    summary = run_demo(args.profile)
    if args.json:
        _print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feature-platform",
        description="Feature platform on Feast: data, registry, materialization, "
        "training and online features. Timestamps are ISO-8601 with an offset "
        "(e.g. 2026-11-26T00:00:00Z).",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="local (default), services, production or scale; "
        "or $FEATURE_PLATFORM_PROFILE",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_, options, handler) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=handler)
        for option in options:
            if callable(option):
                option(p)
            else:
                flags, kwargs = option
                p.add_argument(*flags, **kwargs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the platform's own errors (bad input, configuration,
    a refused apply, a failed gate, ...) print one line and exit 2, anything
    else is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``feature-platform``: the project's own commands (thin wrappers, JSON output).

Imports of feast/sklearn happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from feature_platform.errors import BadInput, PlatformError

__all__ = ["main"]


Handler = Callable[[argparse.Namespace], int]
Options = Callable[[argparse.ArgumentParser], None]
# name -> (help, options, handler), in the order --help lists them
_COMMANDS: dict[str, tuple[str, Options | None, Handler]] = {}


def command(
    name: str, help_: str, options: Options | None = None
) -> Callable[[Handler], Handler]:
    """Register a subcommand: its help, its options (declared right above the
    handler) and the handler."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = (help_, options, handler)
        return handler

    return register


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _store(args: argparse.Namespace, *, applied: bool = True):
    """The profile's store; with ``applied`` (every command that reads the
    definitions) a registry that was never applied is a clear error."""
    from feature_platform.profiles import get_store, require_applied

    store = get_store(args.profile)
    if applied:
        require_applied(store)
    return store


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {minimum}, got {value}"
            )
        return value

    return parse


def _positive(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number > 0, got {text!r}"
        ) from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _generate_options(p: argparse.ArgumentParser) -> None:
    from feature_platform.sample_data import MIN_DAYS  # stdlib-only at import

    p.add_argument("--customers", type=_at_least(1), default=10_000)
    p.add_argument("--drivers", type=_at_least(1), default=1_000)
    p.add_argument(
        "--days",
        type=_at_least(MIN_DAYS),
        default=90,
        help=f"days of history (>= {MIN_DAYS})",
    )
    p.add_argument("--seed", type=_at_least(0), default=42)
    p.add_argument("--end", help="newest timestamp (UTC ISO); default now")
    p.add_argument("--out", help="output directory; default the profile's data dir")


@command(
    "generate",
    "Generate deterministic sample sources + labels.",
    _generate_options,
)
def cmd_generate(args: argparse.Namespace) -> int:
    from feature_platform.profiles import data_dir
    from feature_platform.sample_data import SampleSpec, write_sample_data
    from feature_platform.utc import parse_utc

    spec = SampleSpec(
        customers=args.customers,
        drivers=args.drivers,
        days=args.days,
        seed=args.seed,
        end=parse_utc(args.end, "--end") if args.end else None,
    )
    _print(write_sample_data(args.out or data_dir(), spec))
    return 0


def _load_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="source",
        help="directory of <table>.parquet files; default the profile's data dir",
    )


@command(
    "load",
    "Load the parquet sources into the profile's BigQuery source tables "
    "(created partitioned by event day, clustered by entity key; rows "
    "replaced). Run before the first apply on the production profile.",
    _load_options,
)
def cmd_load(args: argparse.Namespace) -> int:
    from feature_platform.bigquery import load_sources

    _print(load_sources(_store(args, applied=False), data=args.source))
    return 0


@command("plan", "Show what apply would change in the registry.")
def cmd_plan(args: argparse.Namespace) -> int:
    from feature_platform.definitions import plan_definitions

    print(plan_definitions(_store(args, applied=False)) or "no changes")
    return 0


def _apply_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-breaking",
        action="store_true",
        help="apply breaking changes anyway (needs --reason; audit-logged)",
    )
    p.add_argument("--reason", help="why the breaking change is safe, who agreed")


@command(
    "apply",
    "Apply feature_repo/ definitions to the SQL registry; refuses breaking "
    "changes to what the registry holds (docs/governance.md).",
    _apply_options,
)
def cmd_apply(args: argparse.Namespace) -> int:
    from feature_platform.definitions import apply_definitions

    result = apply_definitions(
        _store(args, applied=False),
        allow_breaking=args.allow_breaking,
        reason=args.reason,
    )
    print(result.registry_changes, file=sys.stderr)
    _print(result.summary())
    return 0


def _materialize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start")
    p.add_argument("--end", help="default now (UTC); never in the future")
    p.add_argument("--views", nargs="+", help="feature views (default: all online)")
    p.add_argument(
        "--skip-validation",
        action="store_true",
        help="write without validating the sources first (logged as a warning)",
    )


@command(
    "materialize",
    "Materialize into the online store: incremental up to --end, or an "
    "explicit --start/--end window.",
    _materialize_options,
)
def cmd_materialize(args: argparse.Namespace) -> int:
    from feature_platform.materialize import materialize_incremental, materialize_window
    from feature_platform.utc import parse_utc

    end = parse_utc(args.end, "--end") if args.end else None
    start = parse_utc(args.start, "--start") if args.start else None
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
    _print(result)
    return 0


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


def _feast_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("feast_args", nargs=argparse.REMAINDER, help="feast arguments")


@command(
    "feast",
    "Run the plain feast CLI on the profile (its yaml, .env defaults, repo dir), "
    "e.g. feature-platform --profile services feast plan",
    _feast_options,
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


def _train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", help="parquet of entity rows with the label")
    p.add_argument("--model-dir", help="also write the model here (MLflow format)")
    p.add_argument("--feature-service", default="churn_prediction_service")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--n-estimators", type=_at_least(1), default=200)
    p.add_argument("--threshold", type=float, default=0.75, help="publish gate")


@command(
    "train",
    "PIT training set -> GBC -> metrics -> MLflow run + registered model "
    "version (alias champion if ROC AUC >= --threshold).",
    _train_options,
)
def cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from feature_platform.profiles import data_dir
    from feature_platform.training import run_training
    from feature_platform.utc import parse_utc

    path = Path(args.labels) if args.labels else data_dir() / "churn_labels.parquet"
    if not path.is_file():
        raise BadInput(f"--labels {path} is not a file (generate writes the default)")
    labels = pd.read_parquet(path)
    result = run_training(
        _store(args),
        labels,
        model_dir=args.model_dir,
        feature_service=args.feature_service,
        start=parse_utc(args.start, "--start") if args.start else None,
        end=parse_utc(args.end, "--end") if args.end else None,
        n_estimators=args.n_estimators,
        threshold=args.threshold,
    )
    _print(result)
    return 0


def _cart_value_option(p: argparse.ArgumentParser) -> None:
    """The request-time input of the on-demand view ``checkout_value``."""
    p.add_argument(
        "--cart-value",
        type=float,
        nargs="+",
        help="request data of a model on churn_prediction_service_v2: the cart "
        "value (EUR) at checkout, one per --customer-id",
    )


def _predict_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="churn_prediction_service")
    p.add_argument("--version", default="champion", help="alias or version number")
    p.add_argument("--customer-id", type=int, nargs="+")
    _cart_value_option(p)


@command(
    "predict",
    "Churn probability for customers: the registered model (alias or version) "
    "over online features read through its feature service.",
    _predict_options,
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
    _print(
        {
            "model": f"{args.model} {args.version}",
            "feature_service": bundle.metadata["feature_service"],
            "predictions": predict_online(store, bundle, rows),
        }
    )
    return 0


def _lineage_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--consumers-of",
        metavar="REF",
        help="feature ref (customer_stats:lifetime_value), view or service",
    )
    group.add_argument("--model", help="registered model name")
    p.add_argument("--version", default="champion", help="alias or version number")
    p.add_argument("--json", action="store_true", help="full records")


@command(
    "lineage",
    "Model lineage (MLflow registry): which registered models consume a "
    "feature, view or service (exit 1: none), or what a model version needs.",
    _lineage_options,
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


def _online_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--feature-service")
    group.add_argument("--features", nargs="+", help="view:feature references")
    p.add_argument("--customer-id", type=int, nargs="+")
    _cart_value_option(p)
    p.add_argument("--driver-id", type=int, nargs="+")


@command(
    "online",
    "Read online features for entities.",
    _online_options,
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
    _print(
        read_online(
            _store(args),
            rows,
            feature_service=args.feature_service,
            features=args.features,
        )
    )
    return 0


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


def _recover_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--end", help="end of the ttl window (UTC ISO); default now")
    p.add_argument("--views", nargs="+", help="feature views (default: all online)")
    p.add_argument("--sample", type=_at_least(1), default=200, help="entities per view")
    p.add_argument("--force", action="store_true", help="re-materialize every view")
    p.add_argument("--check", action="store_true", help="only report health")


@command(
    "recover",
    "Check the online store against the offline store (sampled entities) and "
    "re-materialize the last ttl window of every view with missing or stale "
    "values (e.g. after a Redis restart). Exit 1 if still unhealthy.",
    _recover_options,
)
def cmd_recover(args: argparse.Namespace) -> int:
    from feature_platform.recovery import Health, Recovery, online_health, recover
    from feature_platform.utc import parse_utc

    end = parse_utc(args.end, "--end") if args.end else None
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


def _check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", help="feature repo directory (default feature_repo/)")
    p.add_argument(
        "--registry", action="store_true", help="also compare with the registry"
    )
    p.add_argument(
        "--data",
        action="store_true",
        help="also read data: UTC source timestamps, pii served unmasked online",
    )
    p.add_argument(
        "--update-lock",
        action="store_true",
        help="accept the current definitions: rewrite schema.lock.json first",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show info lines")


@command(
    "check",
    "Governance check: ttl >= 3x schedule, breaking changes vs "
    "feature_repo/schema.lock.json (and the registry with --registry), pii "
    "tags. Exit 1 on any error.",
    _check_options,
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


def _audit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=_at_least(1), default=20)
    p.add_argument("--project", help="default: the profile's project")


@command(
    "audit",
    "List the audit log of applies (newest first).",
    _audit_options,
)
def cmd_audit(args: argparse.Namespace) -> int:
    from feature_platform.audit import list_audit

    _print(
        list_audit(_store(args, applied=False), limit=args.limit, project=args.project)
    )
    return 0


def _monitor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="report directory (default artifacts/monitoring)")
    p.add_argument(
        "--server-url",
        help="feature server whose /metrics give served null rates and latency "
        "(default $FP_MONITOR_SERVER_URL; without one: probe reads)",
    )
    p.add_argument(
        "--notify", action="store_true", help="post the alerts to the webhook"
    )
    p.add_argument("--reference-start", help="default: the model's training window")
    p.add_argument("--reference-end")
    p.add_argument("--current-start", help="default: the last 24 hours")
    p.add_argument("--current-end")
    p.add_argument("--views", nargs="+", help="feature views (default: all online)")
    p.add_argument(
        "--sample", type=_at_least(1), default=200, help="entities read per view"
    )
    p.add_argument(
        "--latency-reads", type=_at_least(1), default=100, help="timed reads per view"
    )
    p.add_argument(
        "--fail-on-alert", action="store_true", help="exit 1 when anything is flagged"
    )


@command(
    "monitor",
    "Freshness, served null rate, drift (PSI) and read latency; writes "
    "monitor.json + monitor.html (and a timestamped copy under history/).",
    _monitor_options,
)
def cmd_monitor(args: argparse.Namespace) -> int:
    from feature_platform.monitoring import Window, monitor_and_publish
    from feature_platform.utc import parse_utc

    def window(start: str | None, end: str | None, name: str) -> Window | None:
        if not start and not end:
            return None
        if not (start and end):
            raise BadInput(f"--{name}-start needs --{name}-end and vice versa")
        return Window(
            parse_utc(start, f"--{name}-start"),
            parse_utc(end, f"--{name}-end"),
            "--" + name,
        )

    summary = monitor_and_publish(
        _store(args),
        out_dir=args.out,
        notify=args.notify,
        reference=window(args.reference_start, args.reference_end, "reference"),
        current=window(args.current_start, args.current_end, "current"),
        views=args.views,
        sample=args.sample,
        latency_reads=args.latency_reads,
        server_url=args.server_url,
    )
    _print(summary)
    return 1 if (args.fail_on_alert and not summary["ok"]) else 0


def _validate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="default: --end minus --hours")
    p.add_argument("--end", help="default now (UTC)")
    p.add_argument(
        "--hours", type=_positive, default=4, help="window length (default 4)"
    )
    p.add_argument("--views", nargs="+", help="feature views (default: all online)")
    p.add_argument("--json", action="store_true", help="print the JSON summary")


@command(
    "validate",
    "Validate source data (Great Expectations suites) for a window; "
    "prints a table, exits 1 on failure.",
    _validate_options,
)
def cmd_validate(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from feature_platform.utc import parse_utc, utc_now
    from feature_platform.validation import format_failures, validate_sources

    end = parse_utc(args.end, "--end") if args.end else utc_now()
    start = (
        parse_utc(args.start, "--start")
        if args.start
        else end - timedelta(hours=args.hours)
    )
    summary = validate_sources(
        _store(args), start=start, end=end, views=args.views, raise_on_failure=False
    )
    if args.json:
        _print(summary)
        return 0 if summary["success"] else 1
    print(f"window {summary['window']['start']} .. {summary['window']['end']}")
    for name, report in summary["sources"].items():
        status = "ok" if report["success"] else f"FAILED ({len(report['failures'])})"
        print(
            f"  {name:<20} {report['rows_checked']:>8} rows  "
            f"{report['evaluated']:>3} expectations  {status}"
        )
    if not summary["success"]:
        print("\n" + format_failures(summary["failures"]))
    return 0 if summary["success"] else 1


def _catalog_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
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
    _catalog_options,
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


def _demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="also print the full summary")


@command(
    "demo",
    "Run the whole job end to end on the profile.",
    _demo_options,
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
        if options is not None:
            options(p)
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

"""``feature-platform``: the project's own commands (thin wrappers, JSON output).

Imports of feast/sklearn happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _store(args: argparse.Namespace):
    from feature_platform.config import get_store

    return get_store(args.profile)


def cmd_generate(args: argparse.Namespace) -> int:
    from feature_platform.config import data_dir, parse_utc
    from feature_platform.sample_data import SampleSpec, write_sample_data

    spec = SampleSpec(
        customers=args.customers,
        drivers=args.drivers,
        days=args.days,
        seed=args.seed,
        end=parse_utc(args.end, "--end") if args.end else None,
    )
    _print(write_sample_data(args.out or data_dir(), spec))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from feature_platform.definitions import plan_definitions

    print(plan_definitions(_store(args)) or "no changes")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from feature_platform.definitions import apply_definitions

    result = apply_definitions(_store(args))
    print(result.registry_changes, file=sys.stderr)
    _print(result.summary())
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    from feature_platform.config import parse_utc
    from feature_platform.materialize import materialize_incremental, materialize_window

    store = _store(args)
    end = parse_utc(args.end, "--end") if args.end else None
    if args.start:
        if end is None:
            raise ValueError("--start needs --end (an explicit UTC window)")
        result = materialize_window(
            store, parse_utc(args.start, "--start"), end, views=args.views
        )
    else:
        result = materialize_incremental(store, end, views=args.views)
    _print(result)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from feature_platform.config import artifacts_dir, data_dir, parse_utc
    from feature_platform.training import run_training

    labels = pd.read_parquet(args.labels or data_dir() / "churn_labels.parquet")
    result = run_training(
        _store(args),
        labels,
        model_dir=args.model_dir or artifacts_dir() / "churn_model",
        feature_service=args.feature_service,
        start=parse_utc(args.start, "--start") if args.start else None,
        end=parse_utc(args.end, "--end") if args.end else None,
        n_estimators=args.n_estimators,
    )
    _print(result)
    return 0


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
    _print(
        read_online(
            _store(args),
            rows,
            feature_service=args.feature_service,
            features=args.features,
        )
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from feature_platform.server import serve

    return serve(args)


def cmd_recover(args: argparse.Namespace) -> int:
    from feature_platform.config import parse_utc
    from feature_platform.recovery import online_health, recover

    store = _store(args)
    end = parse_utc(args.end, "--end") if args.end else None
    if args.check:
        report = online_health(store, end=end, views=args.views, sample=args.sample)
    else:
        report = recover(
            store, end=end, views=args.views, sample=args.sample, force=args.force
        )
    _print(report)
    return 0 if report["healthy"] else 1


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
        help="local (default), services or production; or $FEATURE_PLATFORM_PROFILE",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate, "Generate deterministic sample sources + labels.")
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--drivers", type=int, default=1_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--end", help="newest timestamp (UTC ISO); default now")
    p.add_argument("--out", help="output directory; default the profile's data dir")

    add("plan", cmd_plan, "Show what apply would change in the registry.")
    add("apply", cmd_apply, "Apply feature_repo/ definitions to the SQL registry.")

    p = add(
        "materialize",
        cmd_materialize,
        "Materialize into the online store: incremental up to --end, or an "
        "explicit --start/--end window.",
    )
    p.add_argument("--start")
    p.add_argument("--end", help="default now (UTC); never in the future")
    p.add_argument("--views", nargs="+", help="feature views (default: all online)")

    p = add("train", cmd_train, "PIT training set -> GBC -> metrics -> model artifact.")
    p.add_argument("--labels", help="parquet of entity rows with the label")
    p.add_argument("--model-dir")
    p.add_argument("--feature-service", default="churn_prediction_service")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--n-estimators", type=int, default=200)

    p = add("online", cmd_online, "Read online features for entities.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--feature-service")
    group.add_argument("--features", nargs="+", help="view:feature references")
    p.add_argument("--customer-id", type=int, nargs="+")
    p.add_argument("--driver-id", type=int, nargs="+")

    p = add(
        "serve",
        cmd_serve,
        "HTTP feature server (Feast's app + request validation) on the profile.",
    )
    from feature_platform.server import add_serve_arguments  # stdlib-only module

    add_serve_arguments(p)

    p = add(
        "recover",
        cmd_recover,
        "Check the online store against the offline store (sampled entities) and "
        "re-materialize the last ttl window of every view with missing values "
        "(e.g. after a Redis restart). Exit 1 if still unhealthy.",
    )
    p.add_argument("--end", help="end of the ttl window (UTC ISO); default now")
    p.add_argument("--views", nargs="+", help="feature views (default: all online)")
    p.add_argument("--sample", type=int, default=200, help="entities per view")
    p.add_argument("--force", action="store_true", help="re-materialize every view")
    p.add_argument("--check", action="store_true", help="only report health")

    p = add("demo", cmd_demo, "Run the whole job end to end on the profile.")
    p.add_argument("--json", action="store_true", help="also print the full summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The one breaking-change rule, change kind by change kind, and the apply guard.

The "before" side is the snapshot of the real definitions; each case changes one
thing the way an edit of ``feature_repo/`` would, and the rule must name the
change and its additive alternative. Additive changes must pass.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from feature_platform.governance import compare_snapshots, definitions_snapshot
from feature_platform.governance.breaking import suggest_name
from feature_platform.governance.guard import (
    BreakingChangeError,
    guard_apply,
    require_reason,
)
from tests.conftest import REPO_SRC

Snap = dict[str, Any]


@pytest.fixture(scope="module")
def base() -> Snap:
    return definitions_snapshot(REPO_SRC)


def _view(s: Snap, name: str = "customer_stats") -> dict[str, Any]:
    return s["feature_views"][name]


def _drop_feature(s: Snap) -> None:
    del _view(s)["features"]["lifetime_value"]


def _dtype(s: Snap) -> None:
    _view(s)["features"]["total_orders"] = "Float64"


def _drop_view(s: Snap) -> None:
    del s["feature_views"]["driver_stats"]


def _shorter_ttl(s: Snap) -> None:
    _view(s)["ttl_seconds"] = 2 * 86400  # 3d -> 2d: still above the ttl rule


def _join_key(s: Snap) -> None:
    s["entities"]["customer"]["join_key"] = "customer_uuid"


def _view_entities(s: Snap) -> None:
    _view(s)["entities"] = ["driver"]


def _location(key: str, value: str) -> Callable[[Snap], None]:
    def edit(s: Snap) -> None:
        _view(s)["source"]["location"][key] = value

    return edit


def _source_field(key: str, value: str) -> Callable[[Snap], None]:
    def edit(s: Snap) -> None:
        _view(s)["source"][key] = value

    return edit


def _bigquery(s: Snap) -> None:
    _view(s)["source"]["location"] = {"type": "BigQuerySource", "table": "ds.t"}


# (edit, change kind, subject, pattern naming the change, pattern of the alternative)
CASES = [
    pytest.param(
        _drop_feature,
        "feature_removed",
        "customer_stats:lifetime_value",
        r"feature customer_stats:lifetime_value \(Float64\) was removed",
        r"add `lifetime_value_v2` instead",
        id="removed-feature",
    ),
    pytest.param(
        _dtype,
        "dtype",
        "customer_stats:total_orders",
        r"changed dtype Int64 -> Float64",
        r"add a new feature `total_orders_v2` \(Float64\) instead",
        id="dtype",
    ),
    pytest.param(
        _drop_view,
        "view_removed",
        "driver_stats",
        r"feature view driver_stats was removed",
        r"create a new view version `driver_stats_v2` beside driver_stats",
        id="removed-view",
    ),
    pytest.param(
        _shorter_ttl,
        "ttl_shortened",
        "customer_stats",
        r"ttl of customer_stats shrinks 3d -> 2d;",
        r"keep 3d \(a longer ttl is additive\), or create a new view version "
        r"`customer_stats_v2`",
        id="shorter-ttl",
    ),
    pytest.param(
        _join_key,
        "join_key",
        "customer",
        r"entity customer join key changed customer_id -> customer_uuid",
        r"add a new entity \(e.g. `customer_v2`\) for the new key instead",
        id="join-key",
    ),
    pytest.param(
        _view_entities,
        "view_entities",
        "customer_stats",
        r"entities of customer_stats changed \['customer'\] -> \['driver'\]",
        r"create a new view version `customer_stats_v2`",
        id="view-entities",
    ),
    pytest.param(
        _location("path", "{data_dir}/customer_stats_90d.parquet"),
        "source_path",
        "customer_stats",
        r"source path of customer_stats changed "
        r"'\{data_dir\}/customer_stats.parquet' -> "
        r"'\{data_dir\}/customer_stats_90d.parquet'",
        r"create a new view version `customer_stats_v2` on the new source",
        id="source-path",
    ),
    pytest.param(
        _location("table", "warehouse.customer_stats_90d"),
        "source_table",
        "customer_stats",
        r"source table of customer_stats changed '' -> "
        r"'warehouse.customer_stats_90d'",
        r"`customer_stats_v2`",
        id="source-table",
    ),
    pytest.param(
        _location("query", "SELECT * FROM orders WHERE day > now() - 90"),
        "source_query",
        "customer_stats",
        r"source query of customer_stats changed '' -> 'SELECT \* FROM orders",
        r"`customer_stats_v2`",
        id="source-query",
    ),
    pytest.param(
        _bigquery,
        "source_type",
        "customer_stats",
        r"source type of customer_stats changed 'FileSource' -> 'BigQuerySource'",
        r"`customer_stats_v2`",
        id="source-type",
    ),
    pytest.param(
        _source_field("timestamp_field", "observed_at"),
        "source_timestamp_field",
        "customer_stats",
        r"timestamp field of customer_stats's source changed 'event_timestamp' "
        r"-> 'observed_at'",
        r"keep 'event_timestamp' and create a new view version `customer_stats_v2`",
        id="source-timestamp-field",
    ),
    pytest.param(
        _source_field("created_timestamp_column", "loaded_at"),
        "source_created",
        "customer_stats",
        r"created timestamp column of customer_stats's source changed "
        r"'created_timestamp' -> 'loaded_at'",
        r"keep 'created_timestamp'",
        id="source-created-timestamp-field",
    ),
]


@pytest.mark.parametrize(("edit", "change", "subject", "what", "instead"), CASES)
def test_each_breaking_change_is_named_with_its_alternative(
    base: Snap, edit, change: str, subject: str, what: str, instead: str
) -> None:
    new = copy.deepcopy(base)
    edit(new)
    errors = [
        f for f in compare_snapshots(base, new, against="X") if f.severity == "error"
    ]
    mine = [f for f in errors if f.change == change]
    assert len(mine) == 1, errors
    [finding] = mine
    assert finding.subject == subject
    assert re.search(what, finding.message), finding.message
    assert re.search(instead, finding.message), finding.message
    assert finding.message.endswith("(vs X)")

    # The guard refuses it, naming the change and the alternative.
    with pytest.raises(BreakingChangeError) as exc:
        guard_apply(base, new, against="registry project p")
    text = str(exc.value)
    assert text.startswith("apply refused: ")
    assert f"[{change}]" in text and re.search(what, text) and re.search(instead, text)
    assert "--allow-breaking --reason" in text
    assert [f.change for f in exc.value.changes] == [f.change for f in errors]


def test_every_change_is_listed(base: Snap) -> None:
    new = copy.deepcopy(base)
    for edit in (_drop_feature, _dtype, _shorter_ttl, _location("path", "/x")):
        edit(new)
    with pytest.raises(BreakingChangeError) as exc:
        guard_apply(base, new, against="registry project p")
    kinds = [f.change for f in exc.value.changes]
    assert sorted(kinds) == ["dtype", "feature_removed", "source_path", "ttl_shortened"]
    assert str(exc.value).count("\n  - [") == 4


def _add_feature(s: Snap) -> None:
    _view(s)["features"]["avg_order_amount_90d"] = "Float64"


def _add_view(s: Snap) -> None:
    s["feature_views"]["customer_stats_v2"] = copy.deepcopy(_view(s))


def _longer_ttl(s: Snap) -> None:
    _view(s)["ttl_seconds"] = 7 * 86400


def _no_ttl(s: Snap) -> None:
    _view(s)["ttl_seconds"] = 0  # never expires: longer


def _add_entity_and_service(s: Snap) -> None:
    s["entities"]["store"] = {"join_key": "store_id", "value_type": "INT64"}
    s["feature_services"]["new_service"] = ["customer_stats:total_orders"]


@pytest.mark.parametrize(
    "edit", [_add_feature, _add_view, _longer_ttl, _no_ttl, _add_entity_and_service]
)
def test_additive_changes_pass(base: Snap, edit) -> None:
    new = copy.deepcopy(base)
    edit(new)
    found = compare_snapshots(base, new, against="X")
    assert found and all(f.severity == "info" for f in found), found
    assert guard_apply(base, new, against="X") == []


def test_tags_descriptions_and_owners_are_not_changes(tmp_path) -> None:
    """A new tag or description leaves the schema contract as it is."""
    from tests.conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    with (repo / "features.py").open("a") as fh:
        fh.write(
            '\ncustomer_stats.tags["tier"] = "gold"\n'
            'customer_stats.description = "Customer order aggregates (v1)"\n'
            'customer_stats.features[0].description = "Orders placed, all time"\n'
        )
    assert definitions_snapshot(repo) == definitions_snapshot(REPO_SRC)


def test_nothing_applied_passes(base: Snap) -> None:
    assert guard_apply(None, base, against="X") == []


def test_allow_breaking_returns_the_changes(base: Snap) -> None:
    new = copy.deepcopy(base)
    _dtype(new)
    [change] = guard_apply(base, new, against="X", allow_breaking=True)
    assert change.change == "dtype" and change.subject == "customer_stats:total_orders"


def test_reason_is_required_with_allow_breaking() -> None:
    with pytest.raises(ValueError, match=r"--allow-breaking needs --reason"):
        require_reason(True, "  ")
    with pytest.raises(ValueError, match=r"--reason is only used with"):
        require_reason(False, "why")
    assert require_reason(True, " consumers migrated ") == "consumers migrated"
    assert require_reason(False, None) is None


def test_a_lock_without_locations_skips_them(base: Snap) -> None:
    """A lock written before source locations were recorded compares the rest."""
    old = copy.deepcopy(base)
    for view in old["feature_views"].values():
        del view["source"]["location"]
    assert all(f.severity == "info" for f in compare_snapshots(old, base, against="X"))


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("x", "x_v2"), ("x_v2", "x_v3"), ("lifetime_value_v9", "lifetime_value_v10")],
)
def test_suggested_names(name: str, suggestion: str) -> None:
    assert suggest_name(name) == suggestion


# ------------------------------------------------ Feast feature view versions


def test_a_consumer_pins_a_feature_view_version(local_repo, monkeypatch) -> None:
    """What docs/governance.md says about pinning, on a real (SQLite SQL)
    registry: after an allowed breaking change Feast keeps the previous schema as
    v0, and ``view@v0:feature`` reads it, but only with
    ``enable_online_feature_view_versioning``."""
    import pandas as pd

    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store
    from tests.conftest import TEST_END

    versioned = {"registry": {"enable_online_feature_view_versioning": True}}
    store = get_store("local", repo=local_repo, overrides=versioned)
    apply_definitions(store)
    with (local_repo / "features.py").open("a") as fh:
        fh.write(
            "\ndriver_stats.features = "
            '[f for f in driver_stats.features if f.name != "total_trips"]\n'
        )
    with pytest.raises(BreakingChangeError, match=r"\[feature_removed\]"):
        apply_definitions(store)
    result = apply_definitions(store, allow_breaking=True, reason="total_trips moved")
    assert result.versions == {"driver_stats": "v1"}

    drivers = pd.read_parquet(local_repo / "data" / "driver_stats.parquet")
    entity_df = pd.DataFrame(
        {
            "driver_id": drivers["driver_id"].drop_duplicates().head(5).tolist(),
            "event_timestamp": TEST_END,
        }
    )
    # The active version no longer has the feature ...
    with pytest.raises(Exception, match="total_trips"):
        store.get_historical_features(entity_df, ["driver_stats:total_trips"]).to_df()
    # ... a consumer pinned to v0 still reads it.
    pinned = store.get_historical_features(
        entity_df, ["driver_stats@v0:total_trips"]
    ).to_df()
    assert len(pinned) == 5 and pinned["total_trips"].notna().all()

    # Without the flag Feast refuses version-qualified references.
    plain = get_store("local", repo=local_repo)
    with pytest.raises(ValueError, match="online versioning is disabled"):
        plain.get_historical_features(entity_df, ["driver_stats@v0:total_trips"])


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["apply"], "apply"),
        (["--log-level", "INFO", "apply", "--skip-source-validation"], "apply"),
        (["-c", "apply", "plan"], "plan"),  # a directory named apply
        (["feature-views", "describe", "apply"], "feature-views"),
        ([], None),
    ],
)
def test_feature_platform_feast_guards_only_apply(argv, command) -> None:
    """`feature-platform feast ...` runs the guard before Feast's apply only."""
    from feature_platform.cli import _feast_command

    assert _feast_command(argv) == command

"""Helpers behind the DAG tasks: windows, profile resolution, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feature_platform import orchestration
from feature_platform.errors import (
    NaiveTimestampError,
    OnlineStoreUnavailable,
    ValidationFailed,
)

T0 = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("end", "hours", "expected"),
    [
        (T0 + timedelta(days=3), 24, 3),
        (T0 + timedelta(days=3, hours=5), 24, 4),
        (T0 + timedelta(hours=6), 2, 3),
    ],
)
def test_day_chunks_cover_the_range(end, hours, expected) -> None:
    chunks = orchestration.day_chunks(T0, end, hours=hours)
    assert len(chunks) == expected
    assert chunks[0]["start"] == T0.isoformat() and chunks[-1]["end"] == end.isoformat()
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a["end"] == b["start"]


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        (T0, T0, ValueError),
        (T0.replace(tzinfo=None), T0 + timedelta(days=1), NaiveTimestampError),
    ],
)
def test_day_chunks_reject_bad_ranges(start, end, error) -> None:
    with pytest.raises(error):
        orchestration.day_chunks(start, end)


def test_profile_name_falls_back_to_env_then_local(monkeypatch) -> None:
    monkeypatch.delenv("FEATURE_PLATFORM_PROFILE", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_FEATURE_PLATFORM_PROFILE", raising=False)
    assert orchestration.profile_name() == "local"
    monkeypatch.setenv("FEATURE_PLATFORM_PROFILE", "services")
    assert orchestration.profile_name() == "services"
    # The Airflow Variable wins (here from the env secrets backend).
    monkeypatch.setenv("AIRFLOW_VAR_FEATURE_PLATFORM_PROFILE", "production")
    assert orchestration.profile_name() == "production"


def test_unreachable_online_store_is_one_clear_error(monkeypatch) -> None:
    import redis

    from feature_platform import materialize

    def down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1.")

    class Store:
        class config:  # noqa: N801 - mimics FeatureStore.config
            class online_store:  # noqa: N801
                type = "redis"
                connection_string = "127.0.0.1:1,password=hunter2"

    monkeypatch.setattr(materialize, "materialize_window", down)
    monkeypatch.setattr(orchestration, "require_applied", lambda store: None)
    with pytest.raises(OnlineStoreUnavailable) as info:
        orchestration.run_materialization(
            Store(), T0, T0 + timedelta(hours=4), views=["customer_stats"]
        )
    text = str(info.value)
    assert "redis at 127.0.0.1:1 is unreachable" in text
    assert "['customer_stats']" in text and "retrying" in text
    assert "hunter2" not in text


def test_other_errors_pass_through(monkeypatch) -> None:
    from feature_platform import materialize

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(materialize, "materialize_window", broken)
    monkeypatch.setattr(orchestration, "require_applied", lambda store: None)
    with pytest.raises(KeyError):
        orchestration.run_materialization(object(), T0, T0 + timedelta(hours=1))


def test_never_applied_registry_says_run_apply(tmp_path, monkeypatch) -> None:
    """The DAG's materialization on a repo that was never applied (nor generated:
    no data/ directory) names the remedy, not sqlite's "unable to open database
    file"; nothing is materialized."""
    from feature_platform import materialize
    from feature_platform.errors import RegistryNotApplied
    from feature_platform.profiles import get_store
    from tests.conftest import copy_repo

    def must_not_run(*args, **kwargs):
        raise AssertionError("materialized against an empty registry")

    monkeypatch.setattr(materialize, "materialize_window", must_not_run)
    store = get_store("local", repo=copy_repo(tmp_path / "repo"))
    with pytest.raises(RegistryNotApplied, match="run `feature-platform apply`"):
        orchestration.run_materialization(store, T0, T0 + timedelta(hours=1))


def test_applied_registry_passes_the_check(applied_local_store) -> None:
    from feature_platform.profiles import require_applied

    require_applied(applied_local_store)  # no error


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        ("validation", True),
        ("skew", True),
        ("config", True),
        ("registry", True),
        ("missing_interval", True),
        ("naive", True),
        ("online_unavailable", False),
        ("redis_connection", False),
        ("timeout", False),
        ("refused", False),
        ("unknown", False),
    ],
)
def test_permanent_errors_fail_fast_transient_ones_retry(exc, permanent) -> None:
    import redis
    from airflow.sdk.exceptions import AirflowFailException

    from feature_platform.errors import ConfigError, RegistryNotApplied
    from feature_platform.skew import SkewCheckFailed

    factories = {
        "validation": lambda: ValidationFailed({"failures": []}),
        "skew": lambda: SkewCheckFailed({"views": {}}, "skew above 0%"),
        "config": lambda: ConfigError("bad profile"),
        "registry": lambda: RegistryNotApplied("run apply"),
        "missing_interval": lambda: orchestration.MissingDataInterval("no window"),
        "naive": lambda: NaiveTimestampError("naive"),
        "online_unavailable": lambda: OnlineStoreUnavailable("down"),
        "redis_connection": lambda: redis.exceptions.ConnectionError("refused"),
        "timeout": lambda: TimeoutError("slow"),
        "refused": lambda: ConnectionRefusedError(111, "refused"),
        "unknown": lambda: RuntimeError("who knows"),
    }
    error = factories[exc]()
    assert orchestration.is_permanent(error) is permanent
    with pytest.raises(AirflowFailException if permanent else type(error)) as info:
        with orchestration.fail_fast():
            raise error
    if permanent:
        assert type(error).__name__ in str(info.value)
        assert info.value.__cause__ is error

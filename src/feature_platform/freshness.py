"""Freshness at read: never serve a value older than its feature view's ttl.

Feast 0.67 does not enforce a view's ttl on online reads (feast#6821): a value
materialized long ago comes back with status ``PRESENT``. Redis' per-key expiry
(``key_ttl_seconds``) cannot fix that alone: it counts from the *write*, not
from the value's event time, and it is one setting per store. So every platform
read path passes its result through this module, which nulls stale values and
marks them ``OUTSIDE_MAX_AGE``.

Stable API (the fast online read path calls it too):

* ``is_stale(event_timestamp, ttl, now) -> bool``: pure rule. A value is stale
  when ``now - event_timestamp > ttl`` (so a value exactly ``ttl`` old is still
  fresh, the same inclusive bound as the point-in-time join). ``ttl`` ``None``
  or zero means "never expires" (Feast's meaning); a missing timestamp
  (``None`` / 0, i.e. no value) is never stale.
* ``output_ttls(store, *, feature_service=None, features=None,
  full_feature_names=False) -> {output column: ttl}``: the ttl of each column a
  read returns (entity key columns are absent: they never expire).
* ``enforce_on_response(response, ttls, *, now=None) -> int``: mutate a Feast
  ``OnlineResponse`` in place (stale value -> empty ``Value``, status ->
  ``OUTSIDE_MAX_AGE``); returns the number of stale cells.
* ``enforce_on_dict(result, ttls, *, now=None, statuses=None) -> int``: the same
  on a ``to_dict(include_event_timestamps=True)``-style dict (``<col>__ts`` holds
  epoch seconds); stale values become ``None`` in place and, when a ``statuses``
  dict (``{col: [status str, ...]}``) is given, their status ``OUTSIDE_MAX_AGE``.
* ``STATUS_*`` constants: the status names, as Feast spells them.
* ``ensure_registry_current(store)``: the registry side of freshness. Feast
  keeps serving its registry cache forever when the registry database is down
  (a failed refresh is only logged at debug level). Call this before a read:
  it is a no-op while the cache is younger than ``cache_ttl_seconds``, then
  refreshes it and raises ``RegistryUnavailableError`` (naming the database and
  the cause) when the registry cannot be read. So an outage is tolerated for
  ``cache_ttl_seconds`` and then fails loudly; no repair is needed afterwards.

``now`` defaults to the current UTC time; it must be timezone-aware.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.online_response import OnlineResponse

__all__ = [
    "RegistryUnavailableError",
    "STATUS_NOT_FOUND",
    "STATUS_NULL_VALUE",
    "STATUS_OUTSIDE_MAX_AGE",
    "STATUS_PRESENT",
    "TIMESTAMP_SUFFIX",
    "enforce_on_dict",
    "enforce_on_response",
    "ensure_registry_current",
    "is_stale",
    "output_ttls",
]

STATUS_PRESENT = "PRESENT"
STATUS_NULL_VALUE = "NULL_VALUE"
STATUS_NOT_FOUND = "NOT_FOUND"
STATUS_OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
TIMESTAMP_SUFFIX = "__ts"  # feast.online_response.TIMESTAMP_POSTFIX

Timestampish = datetime | int | float | None


class RegistryUnavailableError(RuntimeError):
    """The registry cache expired and the registry database cannot be read."""


def _epoch_seconds(value: Timestampish) -> float | None:
    """Epoch seconds of a timestamp; ``None`` when there is no value."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return ensure_utc(value, "event_timestamp").timestamp()
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    raise TypeError(
        "event_timestamp must be a datetime or epoch seconds, "
        f"got {type(value).__name__}"
    )


def _ttl_seconds(ttl: timedelta | float | None) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    return seconds if seconds > 0 else None


def _now_seconds(now: datetime | None) -> float:
    return (
        ensure_utc(now, "now") if now is not None else datetime.now(UTC)
    ).timestamp()


def is_stale(
    event_timestamp: Timestampish, ttl: timedelta | float | None, now: datetime
) -> bool:
    """True when a value with this event time is older than ``ttl`` at ``now``."""
    ttl_s = _ttl_seconds(ttl)
    event_s = _epoch_seconds(event_timestamp)
    if ttl_s is None or event_s is None:
        return False
    return _now_seconds(now) - event_s > ttl_s


def output_ttls(
    store: FeatureStore,
    *,
    feature_service: str | None = None,
    features: list[str] | None = None,
    full_feature_names: bool = False,
) -> dict[str, timedelta | None]:
    """The ttl behind each feature column a read returns, keyed by column name."""
    from feast.errors import FeatureViewNotFoundException

    # (view name used in output columns, registry view name, feature name)
    triples: list[tuple[str, str, str]] = []
    if feature_service is not None:
        service = store.get_feature_service(feature_service, allow_cache=True)
        for projection in service.feature_view_projections:
            triples.extend(
                (projection.name_to_use(), projection.name, f.name)
                for f in projection.features
            )
    for ref in features or []:
        view, sep, feature = ref.partition(":")
        if not sep or not feature:
            raise ValueError(f"feature reference {ref!r} is not 'view:feature'")
        triples.append((view, view.split("@", 1)[0], feature))
    view_ttl: dict[str, timedelta | None] = {}
    ttls: dict[str, timedelta | None] = {}
    for use_name, view_name, feature in triples:
        if view_name not in view_ttl:
            try:
                fv = store.get_feature_view(view_name, allow_registry_cache=True)
            except FeatureViewNotFoundException:
                # On-demand views are computed at read time: nothing to expire.
                store.get_on_demand_feature_view(view_name)  # else: unknown view
                view_ttl[view_name] = None
            else:
                view_ttl[view_name] = fv.ttl
        column = f"{use_name}__{feature}" if full_feature_names else feature
        ttls[column] = view_ttl[view_name]
    return ttls


def enforce_on_response(
    response: OnlineResponse,
    ttls: Mapping[str, timedelta | None],
    *,
    now: datetime | None = None,
) -> int:
    """Null stale values of a Feast ``OnlineResponse`` in place; count them."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
    from feast.protos.feast.types.Value_pb2 import Value

    now_s = _now_seconds(now)
    stale = 0
    names = response.proto.metadata.feature_names.val
    for name, vector in zip(names, response.proto.results, strict=False):
        ttl_s = _ttl_seconds(ttls.get(name))
        if ttl_s is None:
            continue
        for i, ts in enumerate(vector.event_timestamps):
            event_s = ts.seconds + ts.nanos / 1e9
            if event_s > 0 and now_s - event_s > ttl_s:
                vector.values[i].CopyFrom(Value())
                if i < len(vector.statuses):
                    vector.statuses[i] = FieldStatus.OUTSIDE_MAX_AGE
                stale += 1
    return stale


def enforce_on_dict(
    result: MutableMapping[str, list[Any]],
    ttls: Mapping[str, timedelta | None],
    *,
    now: datetime | None = None,
    statuses: MutableMapping[str, list[str]] | None = None,
) -> int:
    """Null stale values of a ``to_dict(include_event_timestamps=True)`` dict.

    Columns without a ``<col>__ts`` list cannot be checked and raise ``KeyError``
    (a silent pass would serve stale data).
    """
    now_s = _now_seconds(now)
    stale = 0
    for column, ttl in ttls.items():
        ttl_s = _ttl_seconds(ttl)
        if ttl_s is None or column not in result:
            continue
        ts_column = column + TIMESTAMP_SUFFIX
        if ts_column not in result:
            raise KeyError(
                f"{ts_column!r} missing: read with include_event_timestamps=True "
                "so freshness can be enforced"
            )
        values = result[column]
        for i, ts in enumerate(result[ts_column]):
            event_s = _epoch_seconds(ts)
            if event_s is not None and now_s - event_s > ttl_s:
                values[i] = None
                if statuses is not None and column in statuses:
                    statuses[column][i] = STATUS_OUTSIDE_MAX_AGE
                stale += 1
    return stale


def _redacted_registry(store: FeatureStore) -> str:
    path = str(getattr(store.config.registry, "path", ""))
    try:
        from sqlalchemy.engine import make_url

        return make_url(path).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL (file registry)
        return path


def ensure_registry_current(store: FeatureStore) -> None:
    """Raise ``RegistryUnavailableError`` once the registry cache is older than
    ``cache_ttl_seconds`` and cannot be refreshed; refresh it otherwise."""
    registry: Any = store.registry
    ttl = int(getattr(store.config.registry, "cache_ttl_seconds", 0) or 0)
    if ttl <= 0 or not hasattr(registry, "is_cache_valid"):
        return  # no cache (every read goes to the registry) or not a caching one
    if registry.is_cache_valid():
        return
    # Feast's own refresh swallows the error; read the registry ourselves so the
    # caller learns why, and install the result as Feast's refresh would.
    try:
        proto = registry.proto()
    except Exception as exc:  # sqlalchemy OperationalError, psycopg errors, ...
        created = getattr(registry, "cached_registry_proto_created", None)
        since = f"last refreshed {created.isoformat()}" if created else "never read"
        raise RegistryUnavailableError(
            f"feature registry {_redacted_registry(store)} is unreachable and the "
            f"cached copy expired (cache_ttl_seconds={ttl}, {since}); refusing to "
            f"serve from a stale registry: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
        ) from exc
    registry.cached_registry_proto = proto
    registry.cached_registry_proto_created = datetime.now(UTC)

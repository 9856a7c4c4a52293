"""Freshness at read: never serve a value older than its feature view's ttl.

Feast 0.67 does not enforce a view's ttl on online reads (feast#6821): a value
materialized long ago comes back with status ``PRESENT``. Redis' per-key expiry
(``key_ttl_seconds``) cannot fix that alone: it counts from the *write*, not
from the value's event time, and it is one setting per store. So every platform
read path passes its result through this module, which nulls stale values and
marks them ``OUTSIDE_MAX_AGE``.

The rule, written once and used by every read path (the online store plugin's
reader, its fallback over Feast's generic read, the feature server, monitoring):

* ``is_stale_epoch(event_s, ttl_s, now_s) -> bool``: a value is stale when
  ``now - event_timestamp > ttl`` (so a value exactly ``ttl`` old is still fresh,
  the same inclusive bound as the point-in-time join). A ttl of ``None`` or zero
  means "never expires" (Feast's meaning); a missing timestamp (``None`` / 0,
  i.e. no value) is never stale. ``is_stale`` is the same rule on datetimes /
  timedeltas; ``ttl_seconds`` turns a view's ttl into the form the rule takes.
* ``column_ttls(grouped_refs, full_feature_names)``: the ttl behind each feature
  column of a read, from Feast's resolved request (``output_ttls`` does the same
  from a store and a feature service or list).
* ``enforce_on_response(response, ttls, *, now=None) -> int``: mutate a Feast
  ``OnlineResponse`` in place (stale value -> empty ``Value``, status ->
  ``OUTSIDE_MAX_AGE``); returns the number of stale cells. Used where Feast's
  own read assembled the response (stores and requests the fast reader does
  not cover).
* the status names (``STATUS_*``) live with the format, in ``online_store.codec``.
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

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.errors import RegistryUnavailableError
from feature_platform.feature_refs import parse_ref
from feature_platform.utc import ensure_utc

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.online_response import OnlineResponse

__all__ = [
    "RegistryUnavailableError",
    "enforce_on_response",
    "ensure_registry_current",
    "as_of",
    "column_ttls",
    "is_stale",
    "is_stale_epoch",
    "now_seconds",
    "output_ttls",
    "ttl_seconds",
]


Timestampish = datetime | int | float | None


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


def ttl_seconds(ttl: timedelta | float | None) -> float | None:
    """A view's ttl in seconds; ``None`` when it never expires (None or 0)."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    return seconds if seconds > 0 else None


_AS_OF: ContextVar[float | None] = ContextVar("feature_platform_as_of", default=None)


@contextmanager
def as_of(now: datetime | None) -> Iterator[None]:
    """Judge freshness at ``now`` (aware UTC) instead of the clock in this block
    (``read_online(now=...)``, tests of the ttl edge); ``None`` changes nothing."""
    if now is None:
        yield
        return
    token = _AS_OF.set(ensure_utc(now, "now").timestamp())
    try:
        yield
    finally:
        _AS_OF.reset(token)


def now_seconds() -> float:
    """Epoch seconds freshness is judged at: the clock, or ``as_of``'s time."""
    pinned = _AS_OF.get()
    return time.time() if pinned is None else pinned


def _now_seconds(now: datetime | None) -> float:
    return ensure_utc(now, "now").timestamp() if now is not None else now_seconds()


def is_stale_epoch(event_s: float | None, ttl_s: float | None, now_s: float) -> bool:
    """THE freshness rule: stale when ``now - event > ttl`` (all epoch seconds).

    ``ttl_s`` ``None`` never expires; ``event_s`` ``None``/0 (no value) is
    never stale.
    """
    return bool(ttl_s is not None and event_s and now_s - event_s > ttl_s)


def is_stale(
    event_timestamp: Timestampish, ttl: timedelta | float | None, now: datetime
) -> bool:
    """True when a value with this event time is older than ``ttl`` at ``now``."""
    return is_stale_epoch(
        _epoch_seconds(event_timestamp), ttl_seconds(ttl), _now_seconds(now)
    )


def column_ttls(
    grouped_refs: Iterable[tuple[Any, Sequence[str]]], *, full_feature_names: bool
) -> dict[str, timedelta | None]:
    """The ttl behind each output column of a read, from Feast's grouped refs
    (``[(feature view with projection, requested feature names), ...]``)."""
    ttls: dict[str, timedelta | None] = {}
    for view, names in grouped_refs:
        use_name = view.projection.name_to_use()
        for name in names:
            column = f"{use_name}__{name}" if full_feature_names else name
            ttls[column] = view.ttl
    return ttls


def output_ttls(
    store: FeatureStore,
    *,
    feature_service: str | None = None,
    features: list[str] | None = None,
    full_feature_names: bool = False,
) -> dict[str, timedelta | None]:
    """The ttl behind each feature column a read returns, keyed by column name
    (``column_ttls`` over Feast's own resolution of the request; on-demand
    columns are absent: they are computed at read time, nothing expires)."""
    from feature_platform.feast_compat import online_request_context

    for ref in features or []:
        parse_ref(ref)  # InvalidFeatureReference (a ValueError) naming it
    request: Any = (
        store.get_feature_service(feature_service, allow_cache=True)
        if feature_service is not None
        else list(features or [])
    )
    context = online_request_context(
        store.registry, store.project, request, full_feature_names
    )
    return column_ttls(context.grouped_refs, full_feature_names=full_feature_names)


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
        ttl_s = ttl_seconds(ttls.get(name))
        if ttl_s is None:
            continue
        for i, ts in enumerate(vector.event_timestamps):
            if is_stale_epoch(ts.seconds + ts.nanos / 1e9, ttl_s, now_s):
                vector.values[i].CopyFrom(Value())
                if i < len(vector.statuses):
                    vector.statuses[i] = FieldStatus.OUTSIDE_MAX_AGE
                stale += 1
    return stale


def _redacted_registry(store: FeatureStore) -> str:
    from feature_platform.redact import redact_url

    return redact_url(str(getattr(store.config.registry, "path", "")))


def ensure_registry_current(store: FeatureStore) -> None:
    """Raise ``RegistryUnavailableError`` once the registry cache is older than
    ``cache_ttl_seconds`` and cannot be refreshed; refresh it otherwise."""
    registry: Any = store.registry
    ttl = int(getattr(store.config.registry, "cache_ttl_seconds", 0) or 0)
    if ttl <= 0 or not hasattr(registry, "is_cache_valid"):
        return  # no cache (every read goes to the registry) or not a caching one
    if registry.is_cache_valid():
        return
    from feature_platform.feast_compat import (
        install_registry_snapshot,
        registry_snapshot_stamp,
    )

    # Feast's own refresh swallows the error; read the registry ourselves so the
    # caller learns why, and install the result as Feast's refresh would.
    try:
        proto = registry.proto()
    except Exception as exc:  # sqlalchemy OperationalError, psycopg errors, ...
        created = registry_snapshot_stamp(registry)
        since = f"last refreshed {created.isoformat()}" if created else "never read"
        raise RegistryUnavailableError(
            f"feature registry {_redacted_registry(store)} is unreachable and the "
            f"cached copy expired (cache_ttl_seconds={ttl}, {since}); refusing to "
            f"serve from a stale registry: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
        ) from exc
    install_registry_snapshot(registry, proto)

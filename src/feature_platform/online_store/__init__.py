"""The platform's Feast online store plugin and its Redis read/write paths.

Named in a profile as ``online_store: type:
feature_platform.online_store.PlatformRedisOnlineStore`` (or
``...PlatformSqliteOnlineStore`` on the embedded profile); Feast loads the
class and its ``...Config`` from this package. Modules:

* ``codec``: Feast's Redis key/value/timestamp format, encoded and decoded;
* ``reader``: planned, pipelined, freshness-checked reads;
* ``writer``: streaming materialization and pre-packed proto writes;
* ``store``: the Feast ``OnlineStore`` classes wiring those in.

The store classes import Feast; they load on first access, so importing the
codec or the reader stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PlatformRedisOnlineStore",
    "PlatformRedisOnlineStoreConfig",
    "PlatformSqliteOnlineStore",
    "PlatformSqliteOnlineStoreConfig",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from feature_platform.online_store import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

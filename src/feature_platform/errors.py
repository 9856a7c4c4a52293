"""Every exception the platform raises on purpose, defined once.

A caller catches the class here, whichever module raised it; ``cli.main``
turns exactly these (``PlatformError`` and its subclasses) into a one-line
message and exit code 2, so anything else (a bug) keeps its traceback.

A low-layer module: it imports only the standard library (and redis inside
``is_unavailable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ConfigError",
    "InvalidFeatureReference",
    "NaiveTimestampError",
    "OnlineStoreUnavailable",
    "PlatformError",
    "RegistryNotApplied",
    "ValidationFailed",
    "is_unavailable",
]


class PlatformError(Exception):
    """Base of the platform's own errors: bad input or state a user can fix."""


class ConfigError(PlatformError, ValueError):
    """A profile or an environment variable cannot be resolved (unknown name,
    missing variable, bad value, bad yaml); the message names what is wrong."""


class RegistryNotApplied(ConfigError):
    """The profile's registry holds no definitions: ``apply`` was never run."""


class NaiveTimestampError(PlatformError, ValueError):
    """A timestamp without a timezone reached the platform's API."""


class InvalidFeatureReference(PlatformError, ValueError):
    """A feature reference that is not ``'<feature_view>:<feature>'``."""


class OnlineStoreUnavailable(PlatformError, ConnectionError):
    """The online store cannot be reached now: the feature server answers 503,
    a DAG task retries, and nothing was recorded as materialized."""


class ValidationFailed(PlatformError):
    """Source data broke its view's expectations; nothing was written to the
    online store. Raised by every path that validates (the engine's gate under
    ``feast materialize`` and the platform's commands, ``validate_sources``).

    ``summary`` is the JSON-able validation result, ``failures`` its broken
    expectations; ``table`` (``validation.format_failures``) ends the message.
    """

    def __init__(self, summary: Mapping[str, Any], table: str = "") -> None:
        self.summary = dict(summary)
        self.failures: list[dict[str, Any]] = list(summary.get("failures", []))
        super().__init__(
            f"source validation failed: {len(self.failures)} expectation(s) "
            "broken; nothing was written to the online store"
            + (f"\n{table}" if table else "")
        )


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says a service cannot be reached now (so a retry may
    help): ``OnlineStoreUnavailable``, redis-py's connection errors and
    timeouts, and Python's own ``ConnectionError`` / ``TimeoutError``."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    import redis.exceptions as redis_errors  # inside: redis loads in ~0.1 s

    return isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError)

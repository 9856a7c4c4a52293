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
    "BadInput",
    "BreakingChangeError",
    "ConfigError",
    "FutureWindowError",
    "GateError",
    "InvalidFeatureReference",
    "LineageError",
    "LockError",
    "LockTimeout",
    "MissingDataInterval",
    "NaiveTimestampError",
    "NotifyError",
    "OnlineStoreUnavailable",
    "PiiSaltError",
    "PlatformError",
    "RegistryNotApplied",
    "RegistryUnavailableError",
    "SkewCheckFailed",
    "StackError",
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


class PiiSaltError(ConfigError):
    """No usable salt: production needs ``$FEATURE_PLATFORM_PII_SALT``."""


class BadInput(PlatformError, ValueError):
    """An argument, option or file a user gave is wrong; the message names it."""


class NaiveTimestampError(BadInput):
    """A timestamp without a timezone reached the platform's API."""


class FutureWindowError(BadInput):
    """A materialization window ends in the future (would skip late data)."""


class MissingDataInterval(BadInput):
    """A task needs a window but its run has neither a data interval nor a start."""


class BreakingChangeError(PlatformError, ValueError):
    """An apply refused because it would break consumers of the registry
    (``changes``: the breaking findings, ``against``: what was compared)."""

    def __init__(self, message: str, *, changes: list[Any], against: str) -> None:
        super().__init__(message)
        self.changes = changes
        self.against = against


class LockError(PlatformError, RuntimeError):
    """The registry lock cannot be taken (registry unreachable, bad path)."""


class LockTimeout(LockError):
    """Another writer held the registry lock for longer than the timeout."""


class RegistryUnavailableError(PlatformError, RuntimeError):
    """The registry cache expired and the registry database cannot be read."""


class SkewCheckFailed(PlatformError, RuntimeError):
    """The online store disagrees with the offline data above the allowed rate
    (``summary``: the JSON-able check result)."""

    def __init__(self, summary: Mapping[str, Any], message: str) -> None:
        super().__init__(message)
        self.summary = dict(summary)


class GateError(PlatformError, ValueError):
    """A model below the quality gate was about to be published."""


class LineageError(PlatformError, LookupError):
    """A model, version or alias is not in the registry, or has no lineage."""


class NotifyError(PlatformError, RuntimeError):
    """The webhook did not accept the message (the error never contains the URL)."""


class StackError(PlatformError, RuntimeError):
    """A stack process did not start or did not become healthy."""


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

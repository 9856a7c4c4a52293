"""Every exception the platform raises on purpose, defined once.

A caller catches the class here, whichever module raised it; ``cli.main``
turns exactly these (``PlatformError`` and its subclasses) into a one-line
message and exit code 2, so anything else (a bug) keeps its traceback.

A low-layer module: it imports only the standard library.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "NaiveTimestampError",
    "PlatformError",
    "RegistryNotApplied",
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

"""Monitoring windows: a reference and a current time window, both UTC."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from feature_platform.errors import BadInput
from feature_platform.utc import ensure_utc

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["Window", "WindowDict", "as_utc", "default_windows"]

log = logging.getLogger(__name__)


class WindowDict(TypedDict):
    """A ``Window`` as JSON (``Window.as_dict``): ISO-8601 UTC bounds."""

    start: str
    end: str
    source: str  # the window's label: where it comes from


@dataclass(frozen=True)
class Window:
    """``[start, end]`` (aware UTC, non-empty) and where it comes from."""

    start: datetime
    end: datetime
    label: str = ""

    def __post_init__(self) -> None:
        start = ensure_utc(self.start, "window start")
        end = ensure_utc(self.end, "window end")
        if start >= end:
            raise BadInput(f"empty window {start.isoformat()} >= {end.isoformat()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def as_dict(self) -> WindowDict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.label,
        }


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp Feast or a source returned, as aware UTC (naive means UTC)."""
    from feature_platform.utc import stored_utc

    return None if value is None else stored_utc(value)


def default_windows(
    *,
    now: datetime,
    store: FeatureStore | None = None,
    current: timedelta | None = None,
) -> tuple[Window, Window]:
    """Reference = the training window of the registered ``champion`` model of
    the churn service (MLflow, ``feature_platform.lineage``), clipped to end
    before the current window, or the 30 days before it; current = the last
    day. They never overlap."""
    from feature_platform.lineage import training_window
    from feature_platform.training.dataset import DEFAULT_SERVICE

    current_len = current or timedelta(days=1)
    cur = Window(now - current_len, now, "latest")
    ref: Window | None = None
    window, source = training_window(DEFAULT_SERVICE, store=store)
    if window is not None:
        try:
            start = datetime.fromisoformat(window["start"])
            end = min(datetime.fromisoformat(window["end"]), cur.start)
            if start < end:
                ref = Window(start, end, source)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignoring the %s: %s", source, exc)
    else:
        log.info("monitoring reference window: no model training window (%s)", source)
    if ref is None:
        ref = Window(cur.start - timedelta(days=30), cur.start, "30 days before latest")
    return ref, cur

"""Monitoring windows: a reference and a current time window, both UTC."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from feature_platform.config import artifacts_dir, ensure_utc

__all__ = ["Window", "as_utc", "default_windows"]

log = logging.getLogger(__name__)


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
            raise ValueError(f"empty window {start.isoformat()} >= {end.isoformat()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def as_dict(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.label,
        }


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp Feast or a source returned, as aware UTC (naive means UTC)."""
    from feature_platform.config import stored_utc

    return None if value is None else stored_utc(value)


def default_windows(
    *, now: datetime, model_dir: Path | None = None, current: timedelta | None = None
) -> tuple[Window, Window]:
    """Reference = the model's training window (metadata.json) or the 30 days
    before the current window; current = the last day. They never overlap."""
    current_len = current or timedelta(days=1)
    cur = Window(now - current_len, now, "latest")
    meta_path = (model_dir or artifacts_dir() / "churn_model") / "metadata.json"
    ref: Window | None = None
    if meta_path.is_file():
        try:
            tw = json.loads(meta_path.read_text())["training_window"]
            start = datetime.fromisoformat(tw["start"])
            end = min(datetime.fromisoformat(tw["end"]), cur.start)
            if start < end:
                ref = Window(start, end, f"training window ({meta_path})")
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignoring training window in %s: %s", meta_path, exc)
    if ref is None:
        ref = Window(cur.start - timedelta(days=30), cur.start, "30 days before latest")
    return ref, cur

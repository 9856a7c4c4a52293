"""Data quality checks that compare the stores with each other.

* ``sampling``: the one online-vs-offline sampler (an entity sample of a view,
  its offline latest-within-ttl values and what the online store serves for
  it, compared cell by cell), used by the skew check
  (``feature_platform.skew``), recovery's health check
  (``feature_platform.recovery``), monitoring's online null rates
  (``feature_platform.monitoring``) and governance's PII exposure check.

Source validation (the Great Expectations gate) is ``feature_platform.validation``.
"""

from __future__ import annotations

from feature_platform.quality.sampling import (
    Cell,
    OnlineSample,
    is_null,
    lookback,
    sample_online,
    values_match,
)

__all__ = [
    "Cell",
    "OnlineSample",
    "is_null",
    "lookback",
    "sample_online",
    "values_match",
]

"""Data quality: the stores compared with each other, and source expectations.

* ``sampling``: the one online-vs-offline sampler (an entity sample of a view,
  its offline latest-within-ttl values and what the online store serves for
  it, compared cell by cell), used by the skew check
  (``feature_platform.skew``), recovery's health check
  (``feature_platform.recovery``), monitoring's online null rates
  (``feature_platform.monitoring``) and governance's PII exposure check.
* ``expectations``: Great Expectations expectation configurations evaluated in
  one streaming DuckDB pass, with GE's validation-result shape (the engine of
  the source validation gate, ``feature_platform.validation``).
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

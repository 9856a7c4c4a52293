"""The platform's Feast batch materialization engine.

``batch_engine: type: feature_platform.engine.PlatformEngine`` in a profile
makes ``feast materialize``, ``feast materialize-incremental``,
``FeatureStore.materialize*`` in a notebook and the platform's own
``materialize_window`` (CLI, Airflow DAG, KFP) run the same code:

1. **one writer per project**: the whole run holds the project's registry lock
   (``feature_platform.locks``), and the engine records each view's interval in
   the registry itself, inside the lock (``applies_materialization``), so a
   concurrent apply or materialization never loses an interval;
2. **the validation gate**: every view's source rows for its window are
   validated (Great Expectations suites, ``feature_platform.validation``, one
   streaming DuckDB pass over the window: flat memory) before anything is
   written; if any view fails, nothing is written for any view and
   the error names each failed expectation. ``validate_sources: false`` in the
   engine config (or ``validate=False`` from the platform's API) skips it, and
   says so in the log at WARNING on every run;
3. **the write**: views that qualify stream through the vectorized Redis writer
   (``online_store.writer``: bounded memory, Feast's bytes); others go through
   the offline store's latest-rows query and the online store's
   ``online_write_batch`` in batches. Either way the view's ``pii`` fields are
   masked before they reach the online store.

Each job reports the rows it wrote (``PlatformMaterializationJob.rows``);
``feature_platform.materialize`` turns them into the run's summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from feast.infra.common.materialization_job import (
    MaterializationJob,
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.base import ComputeEngine
from feast.repo_config import FeastConfigBaseModel

from feature_platform.errors import ValidationFailed
from feature_platform.offline import BATCH_ROWS, DUCKDB_MEMORY_LIMIT

if TYPE_CHECKING:
    from feature_platform.validation import ValidationSummary

__all__ = [
    "ENGINE_TYPE",
    "PlatformEngine",
    "PlatformEngineConfig",
    "PlatformMaterializationJob",
    "materialize_tasks",
]

log = logging.getLogger(__name__)
ENGINE_TYPE = "feature_platform.engine.PlatformEngine"

Progress = Callable[[str, int, int], None]


class PlatformEngineConfig(FeastConfigBaseModel):
    """``batch_engine:`` keys of the platform engine."""

    type: Literal["feature_platform.engine.PlatformEngine"] = (
        "feature_platform.engine.PlatformEngine"
    )
    validate_sources: bool = True
    """Validate each window's source rows before writing (the gate)."""
    streaming: bool = True
    """Stream qualifying views through the vectorized Redis writer."""
    batch_rows: int = BATCH_ROWS
    """Rows per streamed batch (the writer's memory bound)."""
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT
    """DuckDB's memory limit for the latest-row query (spills beyond it) and
    the validation gate's pass."""
    write_batch_rows: int = 10_000
    """Rows per ``online_write_batch`` call on the generic path."""


@dataclass
class PlatformMaterializationJob(MaterializationJob):
    """One view's materialization: status, error, rows written, window."""

    view: str
    start: datetime
    end: datetime
    rows: int = 0
    _status: MaterializationJobStatus = MaterializationJobStatus.SUCCEEDED
    _error: BaseException | None = None

    def status(self) -> MaterializationJobStatus:
        return self._status

    def error(self) -> BaseException | None:
        return self._error

    def should_be_retried(self) -> bool:
        return False

    def fail(self, exc: BaseException) -> None:
        """Mark the job failed with ``exc`` (what Feast's ``error()`` returns)."""
        self._status, self._error = MaterializationJobStatus.ERROR, exc

    def job_id(self) -> str:
        return f"{self.view}-{self.start.isoformat()}-{self.end.isoformat()}"

    def url(self) -> str | None:
        return None


def _utc(value: datetime) -> datetime:
    from feature_platform.utc import stored_utc

    return stored_utc(value)


def _gate(
    config: Any,
    offline_store: Any,
    tasks: Sequence[MaterializationTask],
    *,
    memory_limit: str | None = None,
) -> ValidationSummary:
    """Validate every task's window; raise ``ValidationFailed`` on a failure."""
    from feature_platform.validation import (
        format_failures,
        summarize,
        validate_view_window,
    )

    now = datetime.now(UTC)
    reports = {}
    for task in tasks:
        view = task.feature_view
        reports[view.name] = validate_view_window(
            config,
            offline_store,
            view,
            start=_utc(task.start_time),
            end=_utc(task.end_time),
            now=now,
            memory_limit=memory_limit,
        )
    summary = summarize(reports)
    if summary["failures"]:
        raise ValidationFailed(summary, format_failures(summary["failures"]))
    return summary


class _Stores(NamedTuple):
    """What Feast hands an engine: the repo config and its two stores."""

    config: Any
    offline_store: Any
    online_store: Any


def _write_generic(
    stores: _Stores,
    view: Any,
    start: datetime,
    end: datetime,
    *,
    batch_rows: int,
    progress: Progress | None,
) -> int:
    """Latest rows of the window from the offline store, written in batches."""
    from feature_platform.feast_compat import arrow_to_proto_rows
    from feature_platform.offline import latest_rows_job
    from feature_platform.pii import mask_table

    config, offline_store, online_store = stores
    job = latest_rows_job(config, offline_store, view, start, end)
    table = mask_table(job.to_arrow(), view)
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    total, written = table.num_rows, 0
    for batch in table.to_batches(max_chunksize=batch_rows):
        rows = arrow_to_proto_rows(batch, view, join_keys)
        online_store.online_write_batch(config, view, rows, progress=None)
        written += len(rows)
        if progress:
            progress(view.name, written, total)
    return written


def materialize_tasks(
    engine_config: PlatformEngineConfig,
    config: Any,
    offline_store: Any,
    online_store: Any,
    registry: Any,
    tasks: Sequence[MaterializationTask],
    *,
    validate: bool | None = None,
    progress: Progress | None = None,
    writer: Callable[[Any, datetime, datetime], int] | None = None,
) -> list[PlatformMaterializationJob]:
    """Lock, validate every window, write, record the intervals; a job per task.

    ``validate`` overrides the engine config's ``validate_sources``; ``writer``
    replaces the write step (the Spark path of the scale profile).
    """
    from feature_platform.locks import registry_lock

    jobs = [
        PlatformMaterializationJob(
            view=t.feature_view.name, start=_utc(t.start_time), end=_utc(t.end_time)
        )
        for t in tasks
    ]
    if not tasks:
        return jobs
    gate = engine_config.validate_sources if validate is None else validate
    project = tasks[0].project
    with registry_lock(config, project=project):
        if gate:
            try:
                _gate(
                    config,
                    offline_store,
                    tasks,
                    memory_limit=engine_config.duckdb_memory_limit,
                )
            except ValidationFailed as exc:
                log.error("%s", exc)
                for job in jobs:
                    job.fail(exc)
                return jobs
        else:
            log.warning(
                "source validation is OFF for this materialization of %s "
                "(validate_sources: false / --skip-validation)",
                ", ".join(j.view for j in jobs),
            )
        for task, job in zip(tasks, jobs, strict=True):
            view = task.feature_view
            started = time.monotonic()
            try:
                job.rows = _write_view(
                    engine_config,
                    _Stores(config, offline_store, online_store),
                    view,
                    job.start,
                    job.end,
                    progress=progress,
                    writer=writer,
                )
                registry.apply_materialization(
                    view, task.project, job.start, job.end, commit=True
                )
            except Exception as exc:  # noqa: BLE001 - reported per job, as Feast's engines do
                log.error("materialization of %s failed: %s", view.name, exc)
                job.fail(exc)
                continue
            log.info(
                "materialized %s rows of %s for %s..%s in %.1fs",
                job.rows,
                view.name,
                job.start.isoformat(),
                job.end.isoformat(),
                time.monotonic() - started,
            )
    return jobs


def _write_view(
    engine_config: PlatformEngineConfig,
    stores: _Stores,
    view: Any,
    start: datetime,
    end: datetime,
    *,
    progress: Progress | None,
    writer: Callable[[Any, datetime, datetime], int] | None,
) -> int:
    from feature_platform.online_store import writer as streaming
    from feature_platform.settings import settings

    if writer is not None:
        return writer(view, start, end)
    config, _offline_store, online_store = stores
    if engine_config.streaming and streaming.supports(config, view):
        from feature_platform.feast_compat import redis_client

        return streaming.materialize_view_fast(
            config,
            redis_client(online_store, config.online_store),
            view,
            start,
            end,
            progress,
            batch_rows=engine_config.batch_rows,
            memory_limit=engine_config.duckdb_memory_limit,
            max_rows_per_s=settings().materialize_max_rows_per_s or None,
        )
    return _write_generic(
        stores,
        view,
        start,
        end,
        batch_rows=engine_config.write_batch_rows,
        progress=progress,
    )


class PlatformEngine(ComputeEngine):
    """Feast ``ComputeEngine`` running ``materialize_tasks`` for Feast's callers."""

    config_class: type[PlatformEngineConfig] = PlatformEngineConfig

    def __init__(
        self, *, repo_config: Any, offline_store: Any, online_store: Any, **options: Any
    ) -> None:
        super().__init__(
            repo_config=repo_config,
            offline_store=offline_store,
            online_store=online_store,
        )
        # The profile's batch_engine keys; a misspelt key is an error naming it.
        self.engine_config = self.config_class(**options)

    @property
    def supports_batch(self) -> bool:
        return True  # Feast hands every view of a run over in one call

    @property
    def applies_materialization(self) -> bool:
        return True  # intervals are recorded inside the registry lock

    def update(
        self,
        project,
        views_to_delete,
        views_to_keep,
        entities_to_delete,
        entities_to_keep,
    ):  # type: ignore[no-untyped-def]
        return None

    def teardown_infra(self, project, fvs, entities):  # type: ignore[no-untyped-def]
        return None

    def materialize(  # type: ignore[override]
        self,
        registry: Any,
        tasks: MaterializationTask | list[MaterializationTask],
        *,
        validate: bool | None = None,
        progress: Progress | None = None,
        **kwargs: Any,
    ) -> list[MaterializationJob]:
        from feature_platform.feast_compat import version_registry_snapshots

        version_registry_snapshots(registry)
        if isinstance(tasks, MaterializationTask):
            tasks = [tasks]
        return list(
            materialize_tasks(
                self.engine_config,
                self.repo_config,
                self.offline_store,
                self.online_store,
                registry,
                tasks,
                validate=validate,
                progress=progress,
                writer=self.writer(),
            )
        )

    def writer(self) -> Callable[[Any, datetime, datetime], int] | None:
        """The write step (None: the streaming or generic path of ``_write_view``);
        the scale profile's engine writes from Spark executors instead."""
        return None

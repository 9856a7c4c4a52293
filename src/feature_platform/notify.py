"""Slack-compatible webhook notifications (run summaries and failure alerts).

The webhook URL comes from, in order: the ``url`` argument, the Airflow
connection ``feature_platform_webhook`` (its ``host`` as a full URL, or
``schema://host:port/path`` parts, or ``extra: {"webhook_url": ...}``), or the
environment variable ``FEATURE_PLATFORM_WEBHOOK_URL``. With no URL the message
is logged and the call succeeds: a laptop without Slack still runs the DAG.

The URL of a Slack webhook *is* a secret (its path holds the token), so logs only
ever show the scheme and host (``feature_platform.redact.redact_url``). Messages
carry ``text`` (what Slack shows) plus a structured ``feature_platform`` object
for other receivers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from feature_platform.errors import NotifyError
from feature_platform.redact import redact_url

__all__ = [
    "CONN_ID",
    "ENV_VAR",
    "Delivery",
    "FailureDetails",
    "Message",
    "NotifyError",
    "airflow_dag_failure_callback",
    "airflow_failure_callback",
    "airflow_retry_callback",
    "failure_message",
    "post_message",
    "resolve_webhook_url",
    "summary_message",
]

log = logging.getLogger(__name__)
CONN_ID = "feature_platform_webhook"
ENV_VAR = "FEATURE_PLATFORM_WEBHOOK_URL"  # read by feature_platform.settings
DEFAULT_TIMEOUT_S = 10.0
_MAX_TEXT = 3000  # Slack truncates long texts; keep alerts readable


def _url_from_connection(conn_id: str) -> str | None:
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow not installed
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException, no metadata DB
        log.debug("no Airflow connection %s: %s", conn_id, exc)
        return None
    extra = conn.extra_dejson or {}
    if extra.get("webhook_url"):
        return str(extra["webhook_url"])
    host = conn.host or ""
    if host.startswith(("http://", "https://")):
        return host
    if not host:
        return None
    # URI form (AIRFLOW_CONN_...=https://host/path): Airflow puts the path in schema.
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else "https"
    port = f":{conn.port}" if conn.port else ""
    path = str(extra.get("endpoint") or conn.schema or "").lstrip("/")
    return f"{scheme}://{host}{port}/{path}"


class Delivery(TypedDict):
    """What posting a message did (``post_message``): the DAGs' notify tasks
    return it."""

    sent: bool
    target: str | None  # the webhook URL, redacted; None when none is set
    status: NotRequired[int]  # the webhook's HTTP status


class FailureDetails(TypedDict):
    """The ``feature_platform`` part of a failure or retry alert."""

    event: str  # "failure" | "retry"
    dag_id: str
    task_id: str | None
    run_id: str | None
    try_number: int | None
    exception: str
    log_url: str | None


class Message(TypedDict):
    """A webhook message: Slack-style ``text`` plus the event's details for
    machines (a failure's ``FailureDetails``, or the event name beside the
    summary of the task it reports: free-form, each task has its own)."""

    text: str
    feature_platform: Mapping[str, Any]


def resolve_webhook_url(*, conn_id: str = CONN_ID) -> str | None:
    """The webhook URL from the Airflow connection or the environment, else None."""
    from feature_platform.settings import settings

    return _url_from_connection(conn_id) or settings().webhook_url or None


def post_message(
    payload: Message,
    *,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Delivery:
    """POST ``payload`` as JSON; returns ``{"sent": bool, "target": redacted url}``.

    Raises :class:`NotifyError` when a configured webhook fails or times out.
    """
    import httpx

    url = url or resolve_webhook_url()
    if not url:
        log.info(
            "no webhook configured (%s / connection %s); message: %s",
            ENV_VAR,
            CONN_ID,
            payload["text"],
        )
        return {"sent": False, "target": None}
    target = redact_url(url)
    # httpx logs every request's full URL at INFO: that would put the token in
    # the task log. Keep its logger at WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        response = httpx.post(
            url,
            content=json.dumps(payload, default=str),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise NotifyError(
            f"webhook {target} unreachable: {type(exc).__name__}"
        ) from None
    if response.status_code >= 300:
        raise NotifyError(f"webhook {target} answered HTTP {response.status_code}")
    log.info("notified %s (HTTP %s)", target, response.status_code)
    return {"sent": True, "target": target, "status": response.status_code}


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def summary_message(title: str, summary: Mapping[str, Any]) -> Message:
    """A completion message: one line per feature view with the rows written."""
    lines = [f":white_check_mark: {title}"]
    window = summary.get("window") or {}
    if window:
        lines.append(f"window {window.get('start')} → {window.get('end')}")
    for name, view in (summary.get("views") or {}).items():
        lines.append(f"• {name}: {view.get('rows', 0)} rows")
    skew = summary.get("skew")
    if skew and skew.get("compared", 0) == 0:
        # Nothing compared is not "0/0 values differ": say why (a backfill whose
        # views a later run already refreshed skips them).
        reasons = [
            f"{name}: {view.get('skipped') or view.get('failed') or 'no value'}"
            for name, view in (skew.get("views") or {}).items()
        ]
        lines.append("online check: nothing compared (" + "; ".join(reasons) + ")")
    elif skew:
        lines.append(
            f"online check: {skew.get('mismatches', 0)}/{skew.get('compared', 0)} "
            f"values differ ({skew.get('mismatch_rate', 0):.2%})"
        )
    return {
        "text": _clip("\n".join(lines)),
        "feature_platform": {"event": "success", "title": title, **summary},
    }


def failure_message(
    *,
    dag_id: str,
    task_id: str | None,
    run_id: str | None,
    exception: BaseException | str | None,
    try_number: int | None = None,
    event: str = "failure",
    log_url: str | None = None,
) -> Message:
    """An alert naming the DAG, task, run and the exception."""
    error = (
        f"{type(exception).__name__}: {exception}"
        if isinstance(exception, BaseException)
        else str(exception or "unknown error")
    )
    icon = ":rotating_light:" if event == "failure" else ":warning:"
    verb = "failed" if event == "failure" else "failed, retrying"
    text = (
        f"{icon} {dag_id}.{task_id or '(dag)'} {verb} (run {run_id}"
        + (f", try {try_number}" if try_number else "")
        + f")\n```{error}```"
    )
    details: FailureDetails = {
        "event": event,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number,
        "exception": _clip(error),
        "log_url": log_url,
    }
    return {"text": _clip(text), "feature_platform": details}


def _message_from_context(context: Any, event: str) -> Message:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    exception = context.get("exception") or context.get("reason")
    return failure_message(
        dag_id=str(getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?")),
        task_id=getattr(ti, "task_id", None),
        run_id=getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None),
        exception=exception,
        try_number=getattr(ti, "try_number", None),
        event=event,
        log_url=getattr(ti, "log_url", None),
    )


def _send_from_callback(context: Any, event: str) -> None:
    try:
        post_message(_message_from_context(context, event))
    except Exception as exc:  # noqa: BLE001 - a callback must never raise
        log.error("could not send the %s alert: %s", event, exc)


def airflow_failure_callback(context: Any) -> None:
    """``on_failure_callback`` for DAGs and tasks: alert on the webhook, never raise."""
    _send_from_callback(context, "failure")


def airflow_dag_failure_callback(context: Any) -> None:
    """DAG-level ``on_failure_callback``: alert on run failures no task reported.

    A failed task already alerted through its own callback (with the exception),
    so ``reason == "task_failure"`` is skipped; a timed-out or deadlocked run is
    alerted here.
    """
    reason = context.get("reason")
    if reason == "task_failure":
        log.info("run failed in a task; its task callback sent the alert")
        return
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    try:
        post_message(
            failure_message(
                dag_id=str(getattr(dag, "dag_id", "?")),
                task_id=None,
                run_id=getattr(dag_run, "run_id", None),
                exception=f"DAG run failed: {reason or 'unknown reason'}",
            )
        )
    except Exception as exc:  # noqa: BLE001 - a callback must never raise
        log.error("could not send the DAG failure alert: %s", exc)


def airflow_retry_callback(context: Any) -> None:
    """``on_retry_callback``: a softer alert that a try failed and will be retried."""
    _send_from_callback(context, "retry")

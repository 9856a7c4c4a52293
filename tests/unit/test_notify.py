"""Webhook notifier: Slack-compatible payloads, no URL -> log only, no secrets."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from feature_platform.notify import (
    ENV_VAR,
    NotifyError,
    airflow_dag_failure_callback,
    failure_message,
    post_message,
    resolve_webhook_url,
    summary_message,
)
from feature_platform.redact import redact_url

SECRET = "T000/B000/very-secret-token"


class Receiver:
    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(delay)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> str:
    """Everything logged: via logging, or printed (Airflow reconfigures logging)."""
    out, err = capfd.readouterr()
    return caplog.text + out + err


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _no_configured_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_FEATURE_PLATFORM_WEBHOOK", raising=False)


def test_without_url_it_succeeds() -> None:
    assert resolve_webhook_url() is None
    assert post_message({"text": "hello"}) == {"sent": False, "target": None}


def test_posts_json_from_the_env_url(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(ENV_VAR, receiver.url)
    message = summary_message(
        "run 1 materialized",
        {
            "window": {"start": "a", "end": "b"},
            "views": {"customer_stats": {"rows": 12}},
        },
    )
    result = post_message(message)
    assert result["sent"] is True and result["status"] == 200
    assert receiver.bodies == [json.loads(json.dumps(message))]
    assert "customer_stats: 12 rows" in receiver.bodies[0]["text"]
    text = logged(caplog, capfd)
    assert SECRET not in text and SECRET not in json.dumps(result)


@pytest.mark.parametrize(
    ("status", "delay", "error"),
    [(500, 0.0, "HTTP 500"), (200, 2.0, "ReadTimeout")],
    ids=["server-error", "timeout"],
)
def test_failures_raise_without_the_secret(status, delay, error) -> None:
    bad = Receiver(status=status, delay=delay)
    try:
        with pytest.raises(NotifyError) as info:
            post_message({"text": "x"}, url=bad.url, timeout=0.5)
    finally:
        bad.close()
    assert error in str(info.value)
    assert SECRET not in str(info.value) and "127.0.0.1" in str(info.value)


def test_unreachable_webhook_raises() -> None:
    with pytest.raises(NotifyError, match="unreachable"):
        post_message({"text": "x"}, url="http://127.0.0.1:9/hook", timeout=1)


@pytest.mark.parametrize(
    ("conn", "url"),
    [
        (
            '{"conn_type": "http", "host": "https://hooks.example.com/services/T/B/x"}',
            "https://hooks.example.com/services/T/B/x",
        ),
        (
            "https://hooks.example.com:8443/services/T/B/x",
            "https://hooks.example.com:8443/services/T/B/x",
        ),
        (
            '{"conn_type": "http", "extra": {"webhook_url": "http://h/x"}}',
            "http://h/x",
        ),
    ],
)
def test_url_from_airflow_connection(conn, url, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_FEATURE_PLATFORM_WEBHOOK", conn)
    monkeypatch.setenv(ENV_VAR, "http://env-is-the-fallback/")
    assert resolve_webhook_url() == url


def test_redact_url_keeps_only_scheme_and_host() -> None:
    assert redact_url(f"https://hooks.slack.com/services/{SECRET}?x=1") == (
        "https://hooks.slack.com/..."
    )


def test_failure_message_names_dag_task_run_and_exception() -> None:
    msg = failure_message(
        dag_id="d", task_id="t", run_id="r", exception=ValueError("bad"), try_number=2
    )
    assert msg["feature_platform"] == {
        "event": "failure",
        "dag_id": "d",
        "task_id": "t",
        "run_id": "r",
        "try_number": 2,
        "exception": "ValueError: bad",
        "log_url": None,
    }
    assert msg["text"].startswith(":rotating_light: d.t failed (run r, try 2)")


_PLAIN_PROCESS = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from feature_platform.notify import post_message
print(post_message({"text": "hi"}, url=sys.argv[1]))  # before Airflow is imported
print(post_message({"text": "hello without url"}))
"""


def test_no_secret_in_logs_of_a_plain_process(receiver: Receiver) -> None:
    """Without Airflow's logging config httpx logs full URLs at INFO: not ours."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PLAIN_PROCESS, receiver.url],
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "'sent': False" in out.stdout and "'sent': True" in out.stdout
    logs = out.stdout + out.stderr  # Airflow's logging setup may route to stdout
    assert "no webhook configured" in logs and "hello without url" in logs
    assert "notified http://127.0.0.1" in logs
    assert SECRET not in logs


def test_dag_callback_alerts_only_on_failures_no_task_reported(
    receiver: Receiver, monkeypatch
) -> None:
    monkeypatch.setenv(ENV_VAR, receiver.url)

    class Dag:
        dag_id = "feast_materialization_pipeline"

    class Run:
        run_id = "scheduled__x"

    context = {"dag": Dag(), "dag_run": Run()}
    airflow_dag_failure_callback({**context, "reason": "task_failure"})
    assert receiver.bodies == []  # the failed task's own callback alerted
    airflow_dag_failure_callback({**context, "reason": "timed_out"})
    [body] = receiver.bodies
    assert body["feature_platform"]["exception"] == "DAG run failed: timed_out"
    assert body["feature_platform"]["run_id"] == "scheduled__x"


def test_a_check_that_compared_nothing_says_so() -> None:
    from feature_platform.notify import summary_message

    skew = {
        "compared": 0,
        "mismatches": 0,
        "mismatch_rate": 0.0,
        "views": {
            "customer_stats": {
                "compared": 0,
                "skipped": "online store holds data materialized up to 2026-11-30",
            }
        },
    }
    text = summary_message("feast_backfill run", {"skew": skew})["text"]
    assert "0/0" not in text
    assert "nothing compared (customer_stats: online store holds data" in text

"""No secret in any committed configuration file.

Every committed yaml/yml/env file (``git ls-files``) is scanned for literal
credentials: a password/secret/token key with a value, ``password=...`` inside a
connection string, a URL with ``user:password@``, private keys and cloud access
keys. Values that are environment references (``${VAR}``, ``${VAR:?msg}``,
``$VAR``) or empty are fine: that is how the profiles and docker-compose.yml
take credentials. The scanner itself is tested on examples, so the repo-wide
check cannot pass by matching nothing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_SUFFIXES = (".yaml", ".yml", ".env")

_SECRET_KEY = (
    r"[A-Za-z0-9_.-]*"
    r"(?:password|passwd|pwd|secret|token|credential|api[_-]?key|access[_-]?key)"
    r"[A-Za-z0-9_.-]*"
)
# key: value / KEY=value / "key": "value" (yaml, env files, JSON-ish yaml)
_ASSIGNMENT = re.compile(
    rf"""^\s*-?\s*["']?(?P<key>{_SECRET_KEY})["']?\s*[:=]\s*(?P<value>.*?)\s*$""",
    re.IGNORECASE,
)
# password=... inside a connection string (redis "host:port,password=x,ssl=y")
_INLINE = re.compile(r"(?:password|passwd|pwd)=(?P<value>[^,;&\s'\"]*)", re.IGNORECASE)
# scheme://user:password@host
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<value>[^\s@/]*)@", re.IGNORECASE)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_CLOUD_KEYS = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|xox[baprs]-[0-9A-Za-z-]{10,})"
)
# ${VAR}, ${VAR:?message}, ${VAR?message}, $VAR: the value comes from the
# environment. ${VAR:-default} is not among them: its default is a literal.
_ENV_REF = re.compile(
    r"^(?:\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}|\$[A-Za-z_][A-Za-z0-9_]*)$"
)
_DEFAULTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")
# Values that name where a secret comes from rather than being one.
_HARMLESS = {"", "null", "~", "none", "false", "true", "no_auth"}


def _is_literal(value: str) -> bool:
    value = value.split(" #", 1)[0].strip().strip("\"'")
    if value.lower() in _HARMLESS or _ENV_REF.match(value):
        return False
    if any(_DEFAULTED.findall(value)):
        return True  # ${SECRET:-literal}: the fallback is a committed secret
    # A value made only of env references (e.g. "${A}${B}") is not a literal.
    return bool(re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", "", value).strip())


def find_secrets(text: str) -> list[str]:
    """Lines of ``text`` that carry a literal credential, as ``line N: reason``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match and _is_literal(match.group("value")):
            value = match.group("value").strip()
            # A key whose value is a nested mapping/list header is not a secret.
            if value not in {"|", ">", "|-", ">-"}:
                found.append(f"line {number}: {match.group('key')} has a literal value")
                continue
        for pattern, reason in (
            (_INLINE, "password= in a string"),
            (_URL, "password in a URL"),
        ):
            for m in pattern.finditer(line):
                if _is_literal(m.group("value")):
                    found.append(f"line {number}: {reason}")
        if _PEM.search(line):
            found.append(f"line {number}: private key")
        if _CLOUD_KEYS.search(line):
            found.append(f"line {number}: cloud access key")
    return found


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("FP_PG_PASSWORD=hunter2", True),
        ("FP_PG_PASSWORD=", False),
        ("FP_REDIS_PASSWORD=${FP_REDIS_PASSWORD}", False),
        ("  password: s3cret", True),
        ("  password: ${FP_PG_PASSWORD}", False),
        ('  POSTGRES_PASSWORD: "${FP_PG_PASSWORD:?set it}"', False),
        ("  POSTGRES_PASSWORD: ${FP_PG_PASSWORD:-changeme}", True),
        ("  AIRFLOW__API_AUTH__JWT_SECRET: abc123", True),
        ("  api_key: AIzaSyD-1234567890abcdefghijklmnopqrstu", True),
        ("  token: ''", False),
        ("  connection_string: localhost:6379,password=hunter2,ssl=true", True),
        ("  connection_string: h:6379,password=${FP_REDIS_PASSWORD},ssl=true", False),
        ("  connection_string: h:6379,password=${FP_REDIS_PASSWORD:-x},ssl=1", True),
        ("  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS: admin:admin", False),
        ("  path: postgresql+psycopg://feast:hunter2@db:5432/feast", True),
        (
            "  path: postgresql+psycopg://${FP_PG_USER}:${FP_PG_PASSWORD}@h:5432/db",
            False,
        ),
        ("  url: postgresql+psycopg2://u:${P:?x}@postgres:5432/airflow", False),
        ("  key: -----BEGIN RSA PRIVATE KEY-----", True),
        ("aws: AKIAABCDEFGHIJKLMNOP", True),
        ("  # password: only in a comment", False),
        ("  auth:", False),
        ("  type: no_auth", False),
        ("  description: the password is generated at first start", False),
    ],
)
def test_scanner(text: str, secret: bool) -> None:
    assert bool(find_secrets(text)) is secret, find_secrets(text)


def _committed_config_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = [
        ROOT / name
        for name in out.split("\0")
        if name
        and (name.endswith(CONFIG_SUFFIXES) or Path(name).name.startswith(".env"))
    ]
    return [f for f in files if f.is_file()]


def test_committed_config_files_hold_no_secrets() -> None:
    files = _committed_config_files()
    names = {f.relative_to(ROOT).as_posix() for f in files}
    # The scan really covers the profiles and the compose file.
    assert "feature_repo/profiles/services.yaml" in names
    assert "docker-compose.yml" in names
    assert "feature_repo/profiles/services.env" in names
    findings = {
        f.relative_to(ROOT).as_posix(): hits
        for f in files
        if (hits := find_secrets(f.read_text(errors="replace")))
    }
    assert not findings, findings


@pytest.mark.parametrize("profile", ["services.yaml", "production.yaml"])
def test_profiles_take_credentials_from_the_environment(profile: str) -> None:
    text = (ROOT / "feature_repo" / "profiles" / profile).read_text()
    assert "${FP_PG_PASSWORD}" in text
    assert "password=${FP_REDIS_PASSWORD}" in text
    assert "ssl=${FP_REDIS_SSL}" in text


# --------------------------------------------------------- redaction for logs

SECRET = "s3cr3t-t0ken"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://feast:{SECRET}@db:5432/registry",
            "postgresql+psycopg://feast:***@db:5432/...",
        ),
        (f"https://hooks.slack.com/services/T0/B0/{SECRET}?x=1", None),
        (f"https://{SECRET}@github.com/org/repo", "https://***@github.com/..."),
        (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/..."),
        (
            f"cache:6379,password={SECRET},ssl=true",
            "cache:6379,password=***,ssl=true",
        ),
        ("sqlite:////srv/registry.db", "sqlite:////srv/registry.db"),
        ("data/registry.db", "data/registry.db"),
    ],
)
def test_redact_url_hides_every_credential(url: str, shown: str | None) -> None:
    from feature_platform.redact import redact_url

    got = redact_url(url)
    assert SECRET not in got
    if shown is not None:
        assert got == shown

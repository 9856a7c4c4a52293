"""One rule for showing a URL in a log, an error or a written file.

A URL can carry a secret in its password (database and Redis URLs), in its
user name (``https://<token>@host``), or in its path and query (a Slack
webhook's path *is* its token). ``redact_url`` keeps what tells a reader which
service is meant, the scheme, host and port, and hides the rest:

* ``postgresql+psycopg://feast:s3cret@db:5432/registry`` ->
  ``postgresql+psycopg://feast:***@db:5432/...``
* ``https://hooks.slack.com/services/T0/B0/token`` -> ``https://hooks.slack.com/...``
* a Redis connection string (``host:6379,password=s3cret,ssl=true``) keeps
  everything but the password (``host:6379,password=***,ssl=true``);
* a plain path or a URL without a network location (``sqlite:///data/x.db``)
  holds no credentials and is returned as it is.

A low-layer module: it imports only the standard library.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["HIDDEN", "redact_url"]

HIDDEN = "***"
# password=... inside a connection string that is not a URL (Feast's Redis form)
_INLINE_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)=[^,;&\s]*")


def redact_url(url: str) -> str:
    """``scheme://[user:***@]host[:port]/...``: safe to log (see the module doc)."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:  # not parseable (e.g. a bad IPv6 literal): show nothing
        return HIDDEN
    if not parts.scheme or not parts.netloc:
        # A local path, a file URL or a Redis connection string.
        return _INLINE_PASSWORD.sub(rf"\1={HIDDEN}", text)
    user = ""
    if parts.password is not None:
        # With a password the user name is an account name: keep it.
        user = f"{parts.username}:{HIDDEN}@"
    elif parts.username:
        user = f"{HIDDEN}@"  # a lone user name may itself be a token
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number
        port = ""
    host = parts.hostname or "?"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{user}{host}{port}/..."

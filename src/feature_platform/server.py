"""``python -m feature_platform.server``: the feature server's entry point.

The server lives in ``feature_platform.serving`` (see ``serving.app``); this
module keeps the command and the uvicorn factory path stable.
"""

from __future__ import annotations

import sys

from feature_platform.serving.app import (
    add_serve_arguments,
    build_app,
    create_app,
    main,
    serve,
)

__all__ = ["add_serve_arguments", "build_app", "create_app", "main", "serve"]

if __name__ == "__main__":
    sys.exit(main())

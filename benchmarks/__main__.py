"""``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]``."""

from __future__ import annotations

import sys

from benchmarks.suite import main

sys.exit(main())

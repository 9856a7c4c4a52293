"""Feature platform on Feast.

Every operation is a typed function in this package; the CLI, Airflow DAGs,
Kubeflow components and notebooks are thin wrappers around them. Importing the
package is cheap: Feast and friends load inside the functions that need them.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"

"""The error bodies of the platform's server, read as Feast's clients read them."""

from __future__ import annotations

import json
from typing import Any


def error_body(response: Any) -> dict[str, Any]:
    """The fields of an error answer (``module``, ``class``, ``message`` and the
    platform's ``error`` code and ``detail``), after checking that it is Feast's
    error detail: a JSON string that ``FeastError.from_error_detail`` (what
    Feast's REST clients call) turns back into a Feast error."""
    from feast.errors import FeastError

    raw = response.json()
    assert isinstance(raw, str), raw  # Feast's form: a JSON document in a string
    raised = FeastError.from_error_detail(raw)
    assert isinstance(raised, FeastError), raw
    fields = json.loads(raw)
    assert str(raised) == fields["message"] == fields["detail"], fields
    return fields

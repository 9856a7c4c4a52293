"""The breaking-change rule for on-demand views, change kind by change kind.

The "before" side is the snapshot of the real definitions (checkout_value);
each case edits one thing the way a change to ``feature_repo/`` would, and the
rule must name it and the additive alternative (``checkout_value_v2``).
Additive changes (a new view, a new output whose function computes the served
outputs as before) pass; a reformat, a docstring or a type hint is no change.
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from feature_platform.governance import compare_snapshots, definitions_snapshot
from feature_platform.governance.guard import BreakingChangeError, guard_apply
from tests.conftest import REPO_SRC, copy_repo

Snap = dict[str, Any]
ODFV = "checkout_value"


@pytest.fixture(scope="module")
def base() -> Snap:
    return definitions_snapshot(REPO_SRC)


def _odfv(s: Snap) -> dict[str, Any]:
    return s["on_demand_feature_views"][ODFV]


def _set_body(s: Snap, lines: list[str]) -> None:
    body = "\n".join(lines)
    _odfv(s)["transformation"] = {
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
        "source": body.splitlines(),
    }


def _edit_body(old: str, new: str):
    def edit(s: Snap) -> None:
        lines = _odfv(s)["transformation"]["source"]
        assert any(old in line for line in lines), old
        _set_body(s, [line.replace(old, new) for line in lines])

    return edit


def _drop_output(s: Snap) -> None:
    del _odfv(s)["features"]["cart_share_of_lifetime"]


def _retype_output(s: Snap) -> None:
    _odfv(s)["features"]["is_first_order"] = "Bool"


def _drop_input(s: Snap) -> None:
    _odfv(s)["sources"]["feature_views"]["customer_stats"].remove("total_orders")


def _add_request_field(s: Snap) -> None:
    _odfv(s)["sources"]["request"]["checkout_request"]["coupon_value"] = "Float64"


def _retype_request_field(s: Snap) -> None:
    _odfv(s)["sources"]["request"]["checkout_request"]["cart_value"] = "Int64"


def _drop_view(s: Snap) -> None:
    del s["on_demand_feature_views"][ODFV]


def _pandas_mode(s: Snap) -> None:
    _odfv(s)["mode"] = "pandas"


# (edit, change kind, subject, pattern naming the change, pattern of the alternative)
CASES = [
    pytest.param(
        _edit_body("avg == 0", "avg <= 0"),
        "transformation",
        ODFV,
        r"transformation of checkout_value changed \(source sha256 \w{12} -> "
        r"\w{12}: - .*avg == 0.*; \+ .*avg <= 0",
        r"keep the served function and create `checkout_value_v2` with the new "
        r"function beside checkout_value",
        id="transformation-body",
    ),
    pytest.param(
        _edit_body("ltv + float(cart)", "ltv"),
        "transformation",
        ODFV,
        r"transformation of checkout_value changed .*ltv \+ float\(cart\)",
        r"`checkout_value_v2`",
        id="transformation-denominator",
    ),
    pytest.param(
        _drop_output,
        "on_demand_output_removed",
        f"{ODFV}:cart_share_of_lifetime",
        r"output checkout_value:cart_share_of_lifetime \(Float64\) was removed",
        r"create `checkout_value_v2` without it beside checkout_value",
        id="removed-output",
    ),
    pytest.param(
        _retype_output,
        "on_demand_dtype",
        f"{ODFV}:is_first_order",
        r"output checkout_value:is_first_order changed dtype Int64 -> Bool",
        r"add a new output `is_first_order_v2` \(Bool\) instead",
        id="output-dtype",
    ),
    pytest.param(
        _drop_input,
        "on_demand_sources",
        ODFV,
        r"inputs of checkout_value changed customer_stats\[avg_order_amount, "
        r"lifetime_value, total_orders\]; .* -> customer_stats\[avg_order_amount, "
        r"lifetime_value\];",
        r"create `checkout_value_v2` with the new inputs",
        id="input-removed",
    ),
    pytest.param(
        _add_request_field,
        "on_demand_sources",
        ODFV,
        r"-> .*request checkout_request\(cart_value: Float64, coupon_value: Float64\)",
        r"callers would have to send other request fields",
        id="request-field-added",
    ),
    pytest.param(
        _retype_request_field,
        "on_demand_sources",
        ODFV,
        r"request checkout_request\(cart_value: Float64\) -> .*"
        r"request checkout_request\(cart_value: Int64\)",
        r"`checkout_value_v2`",
        id="request-field-dtype",
    ),
    pytest.param(
        _drop_view,
        "on_demand_view_removed",
        ODFV,
        r"on-demand feature view checkout_value was removed \(outputs ",
        r"To replace it, create `checkout_value_v2`",
        id="removed-view",
    ),
    pytest.param(
        _pandas_mode,
        "on_demand_mode",
        ODFV,
        r"transformation mode of checkout_value changed python -> pandas",
        r"create `checkout_value_v2` in pandas mode",
        id="mode",
    ),
]


@pytest.mark.parametrize(("edit", "change", "subject", "what", "instead"), CASES)
def test_each_breaking_change_is_named_with_its_alternative(
    base: Snap, edit, change: str, subject: str, what: str, instead: str
) -> None:
    new = copy.deepcopy(base)
    edit(new)
    errors = [
        f for f in compare_snapshots(base, new, against="X") if f.severity == "error"
    ]
    assert [f.change for f in errors] == [change], errors
    [finding] = errors
    assert finding.subject == subject
    assert re.search(what, finding.message), finding.message
    assert re.search(instead, finding.message), finding.message
    with pytest.raises(BreakingChangeError) as exc:
        guard_apply(base, new, against="registry project p")
    text = str(exc.value)
    assert f"[{change}]" in text and "--allow-breaking --reason" in text
    # With --allow-breaking the guard hands the change over (apply audits it).
    [allowed] = guard_apply(base, new, against="X", allow_breaking=True)
    assert allowed.change == change


def _add_view(s: Snap) -> None:
    s["on_demand_feature_views"]["checkout_value_v2"] = copy.deepcopy(_odfv(s))


def _add_output(s: Snap) -> None:
    """A new output and the line that computes it; the served ones unchanged."""
    lines = _odfv(s)["transformation"]["source"]
    body = [
        line.replace(
            "return {",
            "return {'cart_minus_avg': [None if c is None or a is None else c - a "
            "for c, a in zip(carts, avgs)], ",
        )
        for line in lines
    ]
    _set_body(s, body)
    _odfv(s)["features"]["cart_minus_avg"] = "Float64"


@pytest.mark.parametrize(
    ("edit", "changes"),
    [
        (_add_view, ["on_demand_view_added"]),
        (_add_output, ["on_demand_output_added", "transformation_extended"]),
    ],
)
def test_additive_changes_pass(base: Snap, edit, changes: list[str]) -> None:
    new = copy.deepcopy(base)
    edit(new)
    found = compare_snapshots(base, new, against="X")
    assert sorted(f.change for f in found) == changes
    assert all(f.severity == "info" for f in found), found
    assert guard_apply(base, new, against="X") == []


def test_extended_transformation_reports_its_probes(base: Snap) -> None:
    new = copy.deepcopy(base)
    _add_output(new)
    [ext] = [
        f
        for f in compare_snapshots(base, new, against="X")
        if f.change == "transformation_extended"
    ]
    # cart, avg, ltv (7 values each) x orders (6): every combination
    assert re.search(r"compute the same values on 2058 probe rows", ext.message)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("avg == 0", "avg <= 0"),  # differs only for a negative average
        ("int(int(n) == 0)", "int(int(n) <= 1)"),
    ],
)
def test_new_output_with_a_changed_served_output_is_refused(
    base: Snap, old: str, new: str
) -> None:
    changed = copy.deepcopy(base)
    _add_output(changed)
    _edit_body(old, new)(changed)
    errors = [
        f
        for f in compare_snapshots(base, changed, against="X")
        if f.severity == "error"
    ]
    assert [f.change for f in errors] == ["transformation"], errors


def _repo_with(tmp_path: Path, old: str, new: str) -> Path:
    repo = copy_repo(tmp_path / "repo")
    path = repo / "transformations.py"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return repo


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # a docstring, a comment, a type hint and a reformat mean nothing new
        ('"""The checkout\'s cart value', '"""At checkout: the cart value'),
        (
            "        return value is None or value != value  # None, or NaN",
            "        return value is None or value != value  # (NaN: NULL)",
        ),
        (
            "def checkout_value(inputs: dict[str, list])",
            "def checkout_value(inputs: dict)",
        ),
        (
            '    carts = inputs["cart_value"]',
            "    carts = (\n        inputs['cart_value']\n    )",
        ),
    ],
)
def test_meaningless_edits_of_the_function_are_no_change(
    base: Snap, tmp_path: Path, old: str, new: str
) -> None:
    assert definitions_snapshot(_repo_with(tmp_path, old, new)) == base


def test_an_edit_of_the_function_in_the_repo_is_refused(
    base: Snap, tmp_path: Path
) -> None:
    """From the file to the finding: the source Feast records changes."""
    repo = _repo_with(tmp_path, "avg == 0 else", "avg <= 0 else")
    errors = [
        f
        for f in compare_snapshots(base, definitions_snapshot(repo), against="X")
        if f.severity == "error"
    ]
    assert [(f.change, f.subject) for f in errors] == [("transformation", ODFV)]

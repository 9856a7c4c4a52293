"""On-demand features computed from a fast read's decoded columns.

What Feast's online read does after filling the stored views
(``feast.utils._augment_response_with_on_demand_transforms`` for
``mode="python"``, then ``_drop_unneeded_columns``), done on the columns the
fast read already decoded instead of on a response proto:

* the transformation's input is the read as ``OnlineResponse.to_dict()`` gives
  it (entity and request columns as Feast's proto round trip returns them,
  ``cast_column``), minus the features of views the on-demand view did not
  declare (feast#6158), each list a copy;
* the view's own transformation runs it (``feature_transformation.transform``
  or ``transform_singleton``: the udf, the plain function in
  ``feature_repo/transformations.py``), given both name forms of its source
  features as ``OnDemandFeatureView.transform_dict`` gives them (that method
  itself is typeguard-checked: ~20 us per call, half the rest of the work at
  batch 1, measured);
* the outputs Feast keeps (the requested ones, in the udf's order; in python
  mode with full feature names none, as Feast 0.67 returns none) are cast as
  Feast casts them (``python_values_to_proto_values`` with the output's dtype
  and back, ``cast_column``): a NaN or ``None`` is null, an int in a Float64
  output a float;
* request data and unrequested inputs are not served (``OnDemandPlan.hidden``).

Measured (``benchmarks/on_demand.py``, docs/transformations.md): this replaced
building Feast's response proto and running Feast's transform over it, the
larger share of an on-demand read's cost. Where Feast's transform stays
(``plan_on_demand`` returns ``None``; ``response`` builds the proto and calls
it): ``mode="pandas"``/``"substrait"`` (the DataFrame round trip of pandas
mode costs ~2.5 ms per read, ~5x the proto; no gain worth a second copy of
Feast's Arrow conversion), outputs of other than scalar number/string/bool
dtypes (their JSON is Feast's, e.g. base64 bytes), aggregations and views
written to the online store (``reader.plan_read`` sends those to Feast's path).
``tests/unit/test_on_demand_fast.py`` compares this with Feast's own transform
cell for cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OnDemandOutputs",
    "OnDemandPlan",
    "OnDemandRead",
    "cast_column",
    "plan_on_demand",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NONE = type(None)


@dataclass(frozen=True)
class OnDemandOutputs:
    """The served outputs of one on-demand view of a request."""

    name: str  # projection.name_to_use()
    features: tuple[str, ...]  # feature names
    outputs: tuple[str, ...]  # output column per feature
    value_types: tuple[Any, ...] = ()  # feast ValueType per output (computed)


@dataclass
class OnDemandRead:
    """The served columns of one on-demand view, shaped as ``reader.ViewRead``
    for ``serving.metrics``: no ttl of its own (``stale`` all False; a stale
    input gives the transformation a null)."""

    plan: OnDemandOutputs
    values: list[list[Any]]  # [feature][row], as served
    stale: list[bool]


def cast_column(values: Sequence[Any], value_type: Any) -> list[Any]:
    """``values`` as Feast's proto round trip returns them:
    ``feast_value_type_to_python_type`` of ``python_values_to_proto_values(
    values, value_type)`` (``ValueType.UNKNOWN``: the type of the first
    non-null value, as Feast infers a request column's).

    Columns of plain ``float``/``int`` (and ``None``) take a shortcut with the
    same result (NaN -> ``None``; ints kept while they fit int64, where Feast
    raises); anything else goes through Feast's conversion itself.
    """
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds:  # all null: Feast gives empty values
        return [None] * len(values)
    name = value_type.name
    if kinds == {float} and name in ("DOUBLE", "UNKNOWN"):
        return [None if v is None or v != v else v for v in values]
    if kinds == {int} and name in ("INT64", "UNKNOWN"):
        present = [v for v in values if v is not None]
        if _INT64_MIN <= min(present) and max(present) <= _INT64_MAX:
            return list(values)
    from feast.type_map import (
        feast_value_type_to_python_type,
        python_values_to_proto_values,
    )

    return [
        feast_value_type_to_python_type(v)
        for v in python_values_to_proto_values(list(values), value_type)
    ]


@dataclass(frozen=True)
class _View:
    """One on-demand view of a request, planned."""

    view: Any  # feast OnDemandFeatureView (with its projection)
    name: str  # projection.name_to_use()
    selected: frozenset[str]  # output columns Feast keeps
    features: Mapping[str, str]  # output column -> feature name
    undeclared: frozenset[str]  # input columns the udf must not see
    types: Mapping[str, Any]  # output column -> feast ValueType
    aliases: tuple[tuple[str, str], ...]  # (full, short) name of each input

    def transform(self, inputs: dict[str, list[Any]]) -> dict[str, Any]:
        """``OnDemandFeatureView.transform_dict``: both name forms of each
        source feature in, the transformation, the added forms out.

        A plain dict: it is what the view's own python transformation returns
        (column -> list of values, or one value for a ``singleton`` view), keyed
        by names the user's function chose; ``compute`` (below) reads it and
        nothing outside this module sees it."""
        added = []
        for full, short in self.aliases:
            if full in inputs:
                inputs[short] = inputs[full]
                added.append(short)
            elif short in inputs:
                inputs[full] = inputs[short]
                added.append(full)
        transformation = self.view.feature_transformation
        if self.view.singleton:
            out = transformation.transform_singleton(inputs)
        else:
            out = transformation.transform(inputs)
        for name in added:
            out.pop(name, None)
        return out


# Output dtypes the fast path serves (to_dict and JSON as Feast's, by the
# shortcut or Feast's own conversion in ``cast_column``).
_SCALARS = ("DOUBLE", "FLOAT", "INT64", "INT32", "BOOL", "STRING")


@dataclass(frozen=True)
class OnDemandPlan:
    """The on-demand views of a request, computed from a fast read."""

    views: tuple[_View, ...]
    request_data: frozenset[str]
    keep: frozenset[str]  # served columns (Feast's result row names)
    hidden: frozenset[str]  # stored columns read only as inputs: not served
    entity_types: Mapping[str, Any]  # join key -> ValueType
    unknown: Any  # ValueType.UNKNOWN: request data, typed by its first value

    def served_entities(
        self, entity_columns: Mapping[str, list[Any]], join_keys: Any
    ) -> dict[str, list[Any]]:
        """The entity columns Feast's response keeps: join keys (request data
        is dropped)."""
        return {
            k: v for k, v in entity_columns.items() if k in join_keys or k in self.keep
        }

    def compute(
        self, entity_columns: Mapping[str, list[Any]], reads: Sequence[Any]
    ) -> list[OnDemandRead]:
        """The served outputs of every on-demand view, from the entity and
        request columns and the decoded ``reader.ViewRead`` columns."""
        base: dict[str, list[Any]] = {}
        types, unknown = self.entity_types, self.unknown
        for key, values in entity_columns.items():
            base[key] = cast_column(values, types.get(key, unknown))
        for read in reads:
            for name, column in zip(read.plan.outputs, read.values, strict=True):
                base[name] = column
        rows = len(next(iter(entity_columns.values()), []))
        out: list[OnDemandRead] = []
        for planned in self.views:
            inputs = {
                k: list(v) for k, v in base.items() if k not in planned.undeclared
            }
            result = planned.transform(inputs)
            names = [k for k in result if k in planned.selected]
            columns = []
            for k in names:
                column = result[k]
                if not isinstance(column, list):  # as Feast wraps a scalar
                    column = [column]
                columns.append(cast_column(column, planned.types[k]))
            outputs = OnDemandOutputs(
                planned.name,
                tuple(planned.features[k] for k in names),
                tuple(names),
                tuple(planned.types[k] for k in names),
            )
            out.append(OnDemandRead(outputs, columns, [False] * rows))
        return out


def plan_on_demand(
    context: Any, stored_outputs: Sequence[str], *, full_feature_names: bool
) -> OnDemandPlan | None:
    """Plan the request's on-demand views (``context``: Feast's resolution,
    ``feast_compat.RequestContext``) from the stored output columns the read
    decodes; ``None`` when Feast's transform must compute them (see the
    module's docstring)."""
    from feast.types import ComplexFeastType, PrimitiveFeastType
    from feast.value_type import ValueType

    odfvs = list(context.on_demand_views)
    for odfv in odfvs:
        if odfv.mode != "python":
            return None
    # Feast's keying (``_augment_response_with_on_demand_transforms``): a view
    # by its alias in a feature service, else its name; requested outputs in
    # feature-reference order.
    by_key = {
        (odfv.projection.name_alias if odfv.projection else None) or odfv.name: odfv
        for odfv in odfvs
    }
    refs: dict[str, list[str]] = {}
    for ref in context.feature_refs:
        view_name, _, feature = ref.partition(":")
        if view_name in by_key:
            refs.setdefault(view_name, []).append(feature)
    declared_all = {
        p.name: p
        for odfv in odfvs
        for p in odfv.source_feature_view_projections.values()
    }
    views: list[_View] = []
    for key, features in refs.items():
        odfv = by_key[key]
        use = odfv.projection.name_to_use()
        columns = {(f"{use}__{f}" if full_feature_names else f): f for f in features}
        dtypes = {field.name: field.dtype for field in odfv.schema}
        types: dict[str, Any] = {}
        for column in columns:
            # Feast looks the output column up by name (with full feature
            # names none matches: UNKNOWN, Feast's path).
            dtype = dtypes.get(column)
            vtype = (
                dtype.to_value_type()
                if isinstance(dtype, ComplexFeastType | PrimitiveFeastType)
                else ValueType.UNKNOWN
            )
            if vtype.name not in _SCALARS:
                return None
            types[column] = vtype
        declared = {p.name for p in odfv.source_feature_view_projections.values()}
        undeclared: set[str] = set()
        for ref in context.feature_refs:
            view_name, _, feature = ref.partition(":")
            if view_name in by_key or view_name in declared:
                continue
            undeclared |= {feature, f"{view_name}__{feature}"}
        for name, projection in declared_all.items():
            if name in declared:
                continue
            for field in projection.features:
                undeclared |= {field.name, f"{name}__{field.name}"}
        views.append(
            _View(
                view=odfv,
                name=use,
                selected=frozenset(columns),
                features=columns,
                undeclared=frozenset(undeclared),
                types=types,
                aliases=tuple(
                    (f"{p.name}__{f.name}", f.name)
                    for p in odfv.source_feature_view_projections.values()
                    for f in p.features
                ),
            )
        )
    keep = frozenset(context.result_row_names)
    return OnDemandPlan(
        views=tuple(views),
        request_data=frozenset(context.request_data),
        keep=keep,
        hidden=frozenset(o for o in stored_outputs if o not in keep),
        entity_types=dict(context.entity_types),
        unknown=ValueType.UNKNOWN,
    )

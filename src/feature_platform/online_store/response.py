"""The responses of a fast read (``reader.ViewRead`` columns), in Feast's forms.

One home for what a read looks like to its caller, from the same decoded
columns and the one status rule (``ViewRead.statuses``):

* ``PlatformOnlineResponse``: Feast's ``OnlineResponse`` (what
  ``FeatureStore.get_online_features`` returns): ``to_dict()`` (and
  ``to_df``/``to_arrow``, which use it) straight from the decoded columns; its
  ``proto`` (what ``feast serve`` encodes) assembled only when asked for;
* ``json_body``: the JSON of Feast's ``POST /get-online-features`` (what the
  platform's HTTP server answers), byte for byte as Feast's server writes it.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from feast.online_response import TIMESTAMP_POSTFIX, OnlineResponse

from feature_platform.online_store.codec import STATUS_PRESENT
from feature_platform.online_store.on_demand import OnDemandRead

# ``plan`` is a ``reader.ReadPlan``, ``reads`` its ``reader.ViewRead`` list: the
# reader builds responses, so this module does not import it back.
ReadPlan = Any
ViewRead = Any

__all__ = ["OnDemandRead", "PlatformOnlineResponse", "json_body", "timestamp_json"]

_EPOCH = "1970-01-01T00:00:00Z"


class PlatformOnlineResponse(OnlineResponse):
    """An ``OnlineResponse`` built from decoded columns; its proto on demand.

    ``to_dict()`` returns the decoded columns (the same values Feast's proto
    conversion gives); ``proto`` is assembled the first time it is read, after
    which every method reads the proto, as Feast's own response does.
    """

    def __init__(
        self,
        plan: ReadPlan,
        entity_columns: dict[str, list[Any]],
        reads: list[ViewRead],
    ) -> None:
        self.plan = plan
        self.entity_columns = entity_columns
        self.reads = reads
        self._feature_types = plan.feature_types
        self._proto: Any = None
        self._feast_dict: dict[str, Any] | None = None  # of ``_proto``
        # On-demand outputs computed from the columns (``on_demand``), and the
        # stored columns read only as their inputs (not served).
        self.on_demand: list[OnDemandRead] = []
        self.hidden: frozenset[str] = frozenset()
        fast = plan.on_demand_plan if plan.on_demand else None
        if fast is not None:
            self.on_demand = fast.compute(entity_columns, reads)
            self.hidden = fast.hidden
            self.entity_columns = fast.served_entities(
                entity_columns, plan.known_join_keys
            )
        elif plan.on_demand:
            # Feast's own on-demand transform over the proto (as Feast's read
            # computes it after filling the stored views), unrequested inputs
            # and request data dropped; every method reads the proto.
            from feature_platform.feast_compat import apply_on_demand_views

            assert plan.context is not None
            proto = self._build_proto()
            apply_on_demand_views(
                proto,
                plan.context,
                keep={k for k in entity_columns if k in plan.known_join_keys},
                full_feature_names=plan.full_feature_names,
                feature_types=plan.feature_types,
            )
            self._proto = proto

    def to_json_bytes(self) -> bytes:
        """Feast's ``/get-online-features`` JSON of this read: ``json_body``
        from the columns, or Feast's own conversion once there is a proto."""
        if self._proto is None:
            return json_body(
                self.entity_columns,
                self.reads,
                on_demand=self.on_demand,
                hidden=self.hidden,
            )
        return _dumps(self._json_dict())

    def _json_dict(self) -> dict[str, Any]:
        """Feast's JSON dict of the proto, converted once per response."""
        from feast.feature_server_utils import convert_response_to_dict

        if self._feast_dict is None:
            self._feast_dict = convert_response_to_dict(self._proto)
        return self._feast_dict

    def on_demand_reads(self) -> list[OnDemandRead]:
        """Per on-demand view of the request, its output columns as served
        (``OnDemandRead``: ``serving.metrics`` counts their nulls with
        ``list.count(None)``, as a stored view's), from the same JSON dict
        ``to_json_bytes`` sends (converted once)."""
        if not self.plan.on_demand:
            return []
        if self.plan.on_demand_plan is not None:
            return [r for r in self.on_demand if r.values]
        body = self._json_dict()
        index = {name: i for i, name in enumerate(body["metadata"]["feature_names"])}
        results = body["results"]
        rows = len(next(iter(self.entity_columns.values()), []))
        return [
            OnDemandRead(
                outputs,
                [results[index[o]]["values"] for o in outputs.outputs],
                [False] * rows,
            )
            for outputs in self.plan.on_demand_outputs
        ]

    @property  # type: ignore[override]
    def proto(self) -> Any:
        if self._proto is None:
            self._proto = self._build_proto()
        return self._proto

    @proto.setter
    def proto(self, value: Any) -> None:
        self._proto = value
        self._feast_dict = None

    def _build_proto(self) -> Any:
        from feast.protos.feast.serving.ServingService_pb2 import (
            FieldStatus,
            GetOnlineFeaturesResponse,
        )
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import python_values_to_proto_values
        from feast.value_type import ValueType
        from google.protobuf.timestamp_pb2 import Timestamp

        vector = GetOnlineFeaturesResponse.FeatureVector
        response = GetOnlineFeaturesResponse(results=[])
        names = response.metadata.feature_names.val
        empty_ts = Timestamp()
        entity_types = self.plan.entity_types
        for key, values in self.entity_columns.items():
            n = len(values)
            names.append(key)
            response.results.append(
                vector(
                    values=python_values_to_proto_values(
                        values, entity_types.get(key, ValueType.UNKNOWN)
                    ),
                    statuses=[FieldStatus.PRESENT] * n,
                    event_timestamps=[empty_ts] * n,
                )
            )
        for view in self.reads:
            stamps = [
                Timestamp(seconds=s[0], nanos=s[1]) if s else empty_ts
                for s in view.stamps
            ]
            statuses = [FieldStatus.Value(s) for s in view.statuses]
            for j, name in enumerate(view.plan.outputs):
                if name in self.hidden:
                    continue
                names.append(name)
                values = [
                    Value() if stale or reply[j] is None else Value.FromString(reply[j])
                    for reply, stale in zip(view.raw, view.stale, strict=True)
                ]
                response.results.append(
                    vector(values=values, statuses=statuses, event_timestamps=stamps)
                )
        for computed in self.on_demand:
            n = len(computed.stale)
            for name, column, vtype in zip(
                computed.plan.outputs,
                computed.values,
                computed.plan.value_types,
                strict=True,
            ):
                names.append(name)
                response.results.append(
                    vector(
                        values=python_values_to_proto_values(column, vtype),
                        statuses=[FieldStatus.PRESENT] * n,
                        event_timestamps=[empty_ts] * n,
                    )
                )
        return response

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, Any]:
        if self._proto is not None:  # read (and maybe changed) as a proto
            return super().to_dict(include_event_timestamps)
        out: dict[str, Any] = {}
        for key, values in self.entity_columns.items():
            out[key] = list(values)
            if include_event_timestamps:
                out[key + TIMESTAMP_POSTFIX] = [0] * len(values)
        hidden = self.hidden
        for view in self.reads:
            for name, column in zip(view.plan.outputs, view.values, strict=True):
                if name in hidden:
                    continue
                out[name] = list(column)
                if include_event_timestamps:
                    out[name + TIMESTAMP_POSTFIX] = [
                        s[0] if s else 0 for s in view.stamps
                    ]
        for computed in self.on_demand:
            for name, column in zip(
                computed.plan.outputs, computed.values, strict=True
            ):
                out[name] = list(column)
                if include_event_timestamps:
                    out[name + TIMESTAMP_POSTFIX] = [0] * len(column)
        return out


def timestamp_json(seconds: int, nanos: int) -> str:
    """A Timestamp as Feast's server writes it (RFC 3339, adaptive fraction)."""
    if seconds == 0 and nanos == 0:
        return _EPOCH
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))  # 4x datetime's
    if nanos == 0:
        return base + "Z"
    if nanos % 1_000_000 == 0:
        return f"{base}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{base}.{nanos // 1_000:06d}Z"
    return f"{base}.{nanos:09d}Z"


def _float_json(value: Any) -> Any:
    """Non-finite floats as protobuf JSON strings (as Feast's server does)."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    return value


def json_body(
    entity_columns: dict[str, list[Any]],
    reads: list[ViewRead],
    *,
    on_demand: list[OnDemandRead] | None = None,
    hidden: frozenset[str] = frozenset(),
) -> bytes:
    """The body of Feast's ``/get-online-features`` answer for a read.

    ``metadata.feature_names``, then per column ``values``/``statuses``/
    ``event_timestamps``; entity columns first in request order, the statuses
    of ``ViewRead.statuses`` (a stale value ``null`` with its event time kept),
    then the on-demand outputs (``PRESENT``, no event time, as Feast's
    transform adds them); stored columns in ``hidden`` (read only as on-demand
    inputs) left out. Encoded as Starlette's ``JSONResponse`` encodes Feast's
    answer.
    """
    names: list[str] = list(entity_columns)
    results: list[dict[str, Any]] = []
    for values in entity_columns.values():
        n = len(values)
        results.append(
            {
                "values": values,
                "statuses": [STATUS_PRESENT] * n,
                "event_timestamps": [_EPOCH] * n,
            }
        )
    for view in reads:
        stamps = [timestamp_json(*p) if p else _EPOCH for p in view.stamps]
        statuses = view.statuses
        for name, column in zip(view.plan.outputs, view.values, strict=True):
            if name in hidden:
                continue
            names.append(name)
            results.append(
                {"values": column, "statuses": statuses, "event_timestamps": stamps}
            )
    for computed in on_demand or ():
        n = len(computed.stale)
        for name, column in zip(computed.plan.outputs, computed.values, strict=True):
            names.append(name)
            results.append(
                {
                    "values": column,
                    "statuses": [STATUS_PRESENT] * n,
                    "event_timestamps": [_EPOCH] * n,
                }
            )
    body = {"results": results, "metadata": {"feature_names": names}}
    try:
        return _dumps(body)
    except ValueError:  # a non-finite float (rare: not checked value by value)
        for result in results[len(entity_columns) :]:
            result["values"] = [_float_json(v) for v in result["values"]]
        return _dumps(body)


def _dumps(body: dict[str, Any]) -> bytes:
    """Starlette's ``JSONResponse`` encoding (what Feast's endpoint sends)."""
    return json.dumps(
        body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")

"""Authenticated, authorized serving: the real server, Feast's OIDC auth, the RBAC.

The server runs the services profile as shipped (``auth: oidc``) on PostgreSQL
+ Redis, against a loopback OIDC issuer (``tests/integration/oidc.py``: its
discovery document and JWKS; tokens signed with its RSA key). The roles in
the tokens are the teams of ``feature_repo/permissions.py``: growth owns the
customer objects, logistics the driver objects (and its push source), models
read feature services only, ``platform-admin`` may do everything. The admin
endpoints are opened (``FP_SERVER_ADMIN_ENDPOINTS=1``), for that role only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.conftest import AuthedServer
from tests.integration.oidc import other_key

pytestmark = pytest.mark.integration

TIMEOUT_S = 15
CUSTOMER_READ = {
    "features": ["customer_stats:total_orders", "customer_stats:lifetime_value"],
    "entities": {"customer_id": [1001, 1002]},
}
DRIVER_READ = {
    "features": ["driver_stats:avg_rating", "driver_stats:total_trips"],
    "entities": {"driver_id": [1, 2]},
}
SERVICE_READ = {
    "feature_service": "churn_prediction_service",
    "entities": {"customer_id": [1001]},
}


def _push(driver: int, rating: float) -> dict[str, Any]:
    return {
        "push_source_name": "driver_stats_push",
        "df": {
            "driver_id": [driver],
            "event_timestamp": [datetime.now(UTC).isoformat()],
            "avg_rating": [rating],
            "total_trips": [5],
            "acceptance_rate": [0.5],
            "avg_delivery_time_min": [15.0],
        },
    }


def _post(
    server: AuthedServer, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=headers, timeout=TIMEOUT_S)


def _as(server: AuthedServer, *roles: str, **kwargs: Any) -> dict[str, str]:
    return server.issuer.headers(list(roles), **kwargs)


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    """A 401/403 in Feast's error detail format (a JSON string naming
    ``FeastPermissionError``), with the platform's code inside."""
    from feast.errors import FeastError, FeastPermissionError

    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(FeastError.from_error_detail(body), FeastPermissionError)
    assert json.loads(body)["error"] == code, response.text


# ----------------------------------------------------------------- who you are


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/get-online-features", SERVICE_READ),
        ("/get-online-features", DRIVER_READ),
        ("/push", _push(1, 4.0)),
        ("/get-online-features", {"not": "even valid"}),  # 401 before the body
        ("/write-to-online-store", {}),
        ("/materialize", {}),
    ],
)
def test_no_token_is_401(authed_server: AuthedServer, path: str, body: Any) -> None:
    response = _post(authed_server, path, body)
    _assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.jwt", "token-without-scheme"],
)
def test_malformed_authorization_is_401(
    authed_server: AuthedServer, authorization: str
) -> None:
    response = _post(
        authed_server,
        "/get-online-features",
        SERVICE_READ,
        {"Authorization": authorization},
    )
    assert response.status_code == 401, response.text


def test_expired_token_is_401(authed_server: AuthedServer) -> None:
    headers = _as(authed_server, "growth", expires_in=-120)  # past Feast's 10 s leeway
    _assert_error(
        _post(authed_server, "/get-online-features", SERVICE_READ, headers),
        401,
        "invalid_token",
    )


@pytest.mark.parametrize(
    "forged",
    [
        {"key": "other"},  # signed with a key the issuer never published
        {"key": "other", "kid": "unknown-kid"},  # and a key id it does not have
    ],
)
def test_wrongly_signed_token_is_401(
    authed_server: AuthedServer, forged: dict[str, str]
) -> None:
    kwargs: dict[str, Any] = {"key": other_key()}
    if "kid" in forged:
        kwargs["kid"] = forged["kid"]
    headers = _as(authed_server, "platform-admin", **kwargs)
    _assert_error(
        _post(authed_server, "/get-online-features", SERVICE_READ, headers),
        401,
        "invalid_token",
    )


def test_open_paths_need_no_token(authed_server: AuthedServer) -> None:
    assert (
        httpx.get(authed_server.url + "/health", timeout=TIMEOUT_S).status_code == 200
    )
    schema = httpx.get(authed_server.url + "/openapi.json", timeout=TIMEOUT_S)
    assert schema.status_code == 200
    assert "/get-online-features" in schema.json()["paths"]


# ------------------------------------------------------------ what you may do


@pytest.mark.parametrize("keycloak_shape", [False, True])
@pytest.mark.parametrize(
    ("roles", "body"),
    [
        (["growth"], SERVICE_READ),  # a team reads its feature service
        (["growth"], CUSTOMER_READ),  # ... and its views
        (["logistics"], DRIVER_READ),
        (["logistics"], CUSTOMER_READ),  # the cross-team grant on customer_stats
        (["model"], SERVICE_READ),  # models read through feature services
        (["platform-admin"], DRIVER_READ),
    ],
)
def test_granted_reads_are_200(
    authed_server: AuthedServer,
    roles: list[str],
    body: dict[str, Any],
    keycloak_shape: bool,
) -> None:
    """Roles are read from a top-level ``roles`` claim (Azure AD, Okta custom
    claim) and from Keycloak's ``resource_access.<client_id>.roles``."""
    headers = _as(authed_server, *roles, keycloak_shape=keycloak_shape)
    response = _post(authed_server, "/get-online-features", body, headers)
    assert response.status_code == 200, response.text
    names = set(response.json()["metadata"]["feature_names"])
    requested = {ref.split(":")[1] for ref in body.get("features", [])}
    assert requested <= names if requested else "total_orders" in names, names


@pytest.mark.parametrize(
    ("roles", "body"),
    [
        (["growth"], DRIVER_READ),  # another team's view
        (["model"], CUSTOMER_READ),  # models never read views directly
        (["model"], DRIVER_READ),
        ([], SERVICE_READ),  # a valid token without a role
    ],
)
def test_denied_reads_are_403(
    authed_server: AuthedServer, roles: list[str], body: dict[str, Any]
) -> None:
    response = _post(
        authed_server, "/get-online-features", body, _as(authed_server, *roles)
    )
    _assert_error(response, 403, "forbidden")


def _remote_store(server: AuthedServer, token: str) -> Any:
    """Feast's own remote online store client (``online_store: type: remote``)
    pointed at the platform's server, sending ``token``."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    config = RepoConfig(
        project=server.store.project,
        provider="local",
        registry=server.store.config.registry,
        online_store={"type": "remote", "path": server.url},
        entity_key_serialization_version=3,
        auth={"type": "oidc", "token": token},
    )
    return FeatureStore(config=config)


def test_feasts_remote_client_raises_feasts_permission_error(
    authed_server: AuthedServer,
) -> None:
    """Feast's remote client reads the server's 403 as Feast's typed error
    (not a bare RuntimeError), and a granted read comes back as values."""
    from feast.errors import FeastPermissionError

    refs = DRIVER_READ["features"]
    rows = [{"driver_id": d} for d in DRIVER_READ["entities"]["driver_id"]]
    growth = _remote_store(authed_server, authed_server.issuer.token(["growth"]))
    with pytest.raises(FeastPermissionError, match="driver_stats"):
        growth.get_online_features(features=refs, entity_rows=rows)
    logistics = _remote_store(authed_server, authed_server.issuer.token(["logistics"]))
    got = logistics.get_online_features(features=refs, entity_rows=rows).to_dict()
    assert got["driver_id"] == [1, 2]
    assert set(got) == {"driver_id", "avg_rating", "total_trips"}


def test_denied_reads_are_403_on_feasts_path_too(authed_server: AuthedServer) -> None:
    """A read the fast path leaves to Feast's endpoint (``full_feature_names``)
    is authorized by Feast's own check."""
    body = {**DRIVER_READ, "full_feature_names": True}
    denied = _post(
        authed_server, "/get-online-features", body, _as(authed_server, "growth")
    )
    assert denied.status_code == 403, denied.text
    granted = _post(
        authed_server, "/get-online-features", body, _as(authed_server, "logistics")
    )
    assert granted.status_code == 200, granted.text


def test_team_cannot_push_to_another_teams_view(authed_server: AuthedServer) -> None:
    driver = 880_001
    read = {
        "features": ["driver_stats:avg_rating"],
        "entities": {"driver_id": [driver]},
    }
    logistics = _as(authed_server, "logistics")

    denied = _post(
        authed_server, "/push", _push(driver, 1.5), _as(authed_server, "growth")
    )
    assert denied.status_code == 403, denied.text
    after = _post(authed_server, "/get-online-features", read, logistics).json()
    assert after["results"][1]["values"] == [None]  # nothing was written

    granted = _post(authed_server, "/push", _push(driver, 3.5), logistics)
    assert granted.status_code == 200, granted.text
    after = _post(authed_server, "/get-online-features", read, logistics).json()
    assert after["results"][1]["values"] == [3.5]


# ------------------------------------------------------------ admin endpoints


def _write_body(driver: int, rating: float) -> dict[str, Any]:
    return {"feature_view_name": "driver_stats", "df": _push(driver, rating)["df"]}


@pytest.mark.parametrize("roles", [["logistics"], ["growth"], ["model"], []])
def test_admin_endpoints_need_the_admin_role(
    authed_server: AuthedServer, roles: list[str]
) -> None:
    headers = _as(authed_server, *roles)
    for path, body in [
        ("/write-to-online-store", _write_body(880_002, 2.0)),
        (
            "/materialize",
            {"start_ts": "2024-01-01T00:00:00Z", "end_ts": "2024-01-02T00:00:00Z"},
        ),
        ("/materialize-incremental", {"end_ts": "2024-01-02T00:00:00Z"}),
    ]:
        _assert_error(_post(authed_server, path, body, headers), 403, "forbidden")


def test_admin_role_reaches_the_admin_endpoints(authed_server: AuthedServer) -> None:
    driver = 880_003
    admin = _as(authed_server, "platform-admin")
    write = _post(
        authed_server, "/write-to-online-store", _write_body(driver, 4.25), admin
    )
    assert write.status_code == 200, write.text
    read = {
        "features": ["driver_stats:avg_rating"],
        "entities": {"driver_id": [driver]},
    }
    got = _post(authed_server, "/get-online-features", read, admin).json()
    assert got["results"][1]["values"] == [4.25]

"""Who is calling, and may they: Feast's authentication and RBAC on the guard's path.

Feast's feature server authenticates each endpoint with a FastAPI dependency
(``feast.permissions.server.rest.inject_user_details``) and authorizes inside
the endpoint (``assert_permissions``). The platform's request guard answers
reads before Feast's endpoint (fast reads) and rejects bad bodies before it, so
it authenticates first, with Feast's own auth manager (the token extractor and
the OIDC or Kubernetes token parser that ``init_auth_manager`` builds from the
profile's ``auth`` block), and authorizes the reads it answers with Feast's own
enforcer (``enforce_policy``) over the registry's permissions
(``feature_repo/permissions.py``). Requests it passes on are authenticated and
authorized again by Feast's endpoint, as with ``feast serve``.

What is open without a token: ``OPEN_PATHS`` (health, metrics, the API docs).
Feast's admin endpoints (``guard.ADMIN_PREFIXES``) are closed unless
``FP_SERVER_ADMIN_ENDPOINTS=1``, and then need the admin role of
``feature_repo/permissions.py`` (``ADMIN_ROLE``).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from feature_platform.feature_refs import view_of
from feature_platform.serving.errors import RequestError

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.permissions.user import User

# Paths served without a token on an authenticated profile: probes, the
# Prometheus scrape and the API description (no feature values).
OPEN_PATHS = frozenset(
    {"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)

_BEARER_HELP = "send `Authorization: Bearer <access token>` from the identity provider"


class Authorizer:
    """Authentication and authorization of one app's requests (``enabled`` when
    the profile's ``auth`` is not ``no_auth``)."""

    def __init__(self, store: FeatureStore, *, admin_role: str) -> None:
        self.store = store
        self.enabled = store.config.auth_config.type != "no_auth"
        self.admin_role = admin_role
        # Feast's permissions, the objects a read names and the decisions,
        # kept for the catalog snapshot they were read for: Feast rebuilds
        # objects from protos on every lookup (a feature service: 10-20 ms
        # with typeguard) and its enforcer takes ~1 ms; a kept decision, µs.
        self._snapshot: tuple[Any, list[Any], dict[tuple[str, str], Any]] = (
            object(),
            [],
            {},
        )

    async def authenticate(self, scope: MutableMapping[str, Any]) -> User | None:
        """The caller of an HTTP request, from its bearer token (``None`` when
        auth is off); ``RequestError`` 401 without a valid token. The user is
        also set on Feast's security manager, as Feast's endpoints do."""
        if not self.enabled:
            return None
        from feast.permissions.auth.auth_manager import get_auth_manager
        from feast.permissions.security_manager import get_security_manager
        from starlette.requests import Request

        manager = get_auth_manager()
        try:
            token = manager.token_extractor.extract_access_token(request=Request(scope))
        except Exception:  # noqa: BLE001 - no header, or not a Bearer one
            token = ""
        if not token:
            raise RequestError(
                401, "unauthenticated", f"no access token: {_BEARER_HELP}"
            )
        try:
            user = await manager.token_parser.user_details_from_access_token(
                access_token=token
            )
        except Exception:  # noqa: BLE001 - bad signature, expired, unknown key
            raise RequestError(
                401,
                "invalid_token",
                "the access token is invalid or expired (signature, expiry and "
                f"issuer keys are checked): {_BEARER_HELP}",
            ) from None
        manager_sm = get_security_manager()
        if manager_sm is not None:
            manager_sm.set_current_user(user)
            manager_sm.set_current_request_token(token)
        return user

    def require_admin(self, user: User | None, what: str) -> None:
        """403 unless ``user`` has the admin role (the admin endpoints)."""
        if user is None or not user.has_matching_role([self.admin_role]):
            raise RequestError(
                403,
                "forbidden",
                f"{what} needs the {self.admin_role!r} role "
                "(feature_repo/permissions.py ADMIN_ROLE)",
            )

    def authorize_read(
        self, payload: dict[str, Any], user: User | None, catalog: Any = None
    ) -> None:
        """403 unless ``user`` may read online what a validated
        ``/get-online-features`` names: the feature service, or each view of
        the feature list (what Feast's endpoint asserts), with Feast's enforcer
        over the registry's cached permissions."""
        if not self.enabled:
            return
        from feast.errors import FeastObjectNotFoundException, FeastPermissionError
        from feast.permissions.action import AuthzedAction
        from feast.permissions.enforcer import enforce_policy
        from feast.permissions.user import User as FeastUser

        permissions, objects = self._cached(catalog)
        registry, project = self.store.registry, self.store.project
        if payload.get("feature_service"):
            wanted = [("service", str(payload["feature_service"]))]
        else:
            views = dict.fromkeys(view_of(ref) for ref in payload["features"])
            wanted = [("view", name) for name in views]
        caller = user or FeastUser("", [])
        # Feast's decision depends on the caller's roles, groups and namespaces
        # and the objects only: kept per snapshot (enforce_policy walks every
        # permission with abc isinstance checks, ~1 ms a read).
        decision_key = (
            "decision",
            repr(
                (
                    sorted(caller.roles or []),
                    sorted(getattr(caller, "groups", None) or []),
                    sorted(getattr(caller, "namespaces", None) or []),
                    wanted,
                )
            ),
        )
        denied = objects.get(decision_key)
        if denied is not None:
            if denied:
                raise RequestError(403, "forbidden", denied)
            return
        resources: list[Any] = []
        try:
            for kind, name in wanted:
                resource = objects.get((kind, name))
                if resource is None:
                    resource = (
                        registry.get_feature_service(name, project, allow_cache=True)
                        if kind == "service"
                        else registry.get_any_feature_view(
                            name, project, allow_cache=True
                        )
                    )
                    objects[(kind, name)] = resource
                resources.append(resource)
        except FeastObjectNotFoundException as exc:  # removed since validation
            raise RequestError(404, "not_found", str(exc)) from None
        try:
            enforce_policy(
                permissions=permissions,
                user=caller,
                resources=resources,
                actions=[AuthzedAction.READ_ONLINE],
            )
        except FeastPermissionError as exc:
            objects[decision_key] = str(exc)
            raise RequestError(403, "forbidden", str(exc)) from None
        objects[decision_key] = ""

    def _cached(self, catalog: Any) -> tuple[list[Any], dict[tuple[str, str], Any]]:
        """The project's permissions and the objects and decisions resolved so
        far, for the guard's ``catalog`` (a snapshot of the registry that keeps
        its identity until a view, service or permission changes; the server
        rebuilds it in the background). Without one, nothing is kept."""
        cached_catalog, permissions, objects = self._snapshot
        if catalog is None or catalog is not cached_catalog:
            permissions = self.store.registry.list_permissions(
                self.store.project, allow_cache=True
            )
            objects = {}
            if catalog is not None:
                self._snapshot = (catalog, permissions, objects)
        return permissions, objects


def admin_role(store: FeatureStore) -> str:
    """The admin role of the store's repo (``permissions.py`` ``ADMIN_ROLE``)."""
    from feature_platform.profiles import repo_module

    return str(repo_module("permissions", repo=store.config.repo_path).ADMIN_ROLE)

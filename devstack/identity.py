"""An Entra ID (Microsoft identity platform v2.0) token issuer over HTTPS, for the API's bearer tokens in devstack.

The dispatcher validates tokens as it does in Azure, with PyJWT's ``PyJWKClient`` against the issuer's OpenID
configuration and signing keys::

    config = requests.get(f"{issuer.authority}/.well-known/openid-configuration", verify=str(tls.ca)).json()
    keys = jwt.PyJWKClient(config["jwks_uri"], ssl_context=ssl.create_default_context(cafile=str(tls.ca)))
    claims = jwt.decode(token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                        audience=API_CLIENT_ID, issuer=issuer.authority)

Endpoints, under ``/{tenant}`` as in Entra (the tenant is :data:`TENANT_ID` or :data:`TENANT_DOMAIN`):

* ``GET /{tenant}/v2.0/.well-known/openid-configuration``: the discovery document, shaped like Entra's tenant one;
* ``GET /{tenant}/discovery/v2.0/keys``: the signing key as a JWK set (``kid`` = ``x5t``, with ``x5c`` and
  ``issuer``, as Entra publishes them);
* ``POST /{tenant}/oauth2/v2.0/token``: the resource owner password grant for a development user (the password is
  not checked), answering an access token for the API, and an ID token when ``openid`` is asked for; and the
  ``authorization_code`` (PKCE) and ``refresh_token`` grants of a single-page application;
* ``GET|POST /{tenant}/oauth2/v2.0/authorize``: the sign-in page of the authorization code flow, listing the
  development users (:mod:`devstack.identity_code`), as MSAL.js in the dashboard uses it.

Tokens are shaped like Entra's v2.0 access tokens for a delegated user (``aud`` is the API's client id, ``azp`` the
client's, ``scp``, ``roles``, ``groups``, ``oid``, ``tid``...). Errors have Entra's token-endpoint shape
(``error``, ``error_description`` starting with the AADSTS code, ``error_codes``, ``timestamp``, ``trace_id``,
``correlation_id``, ``error_uri``). What devstack does not do: the device code flow (the discovery document names
its endpoint; it answers 501), sign-in sessions (``prompt=none`` always answers ``login_required``), client
credentials, ``common`` and ``organizations``, and key rollover.

The RSA signing key lives in the state folder (``signing-key.pem``, mode 0600), so an issuer restarted on the same
folder keeps its ``kid`` and still validates the tokens it issued before. Tests mint tokens directly with
:meth:`IdentityIssuer.token`, including expired, not-yet-valid, wrong-audience, wrong-issuer and foreign-signed ones.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from devstack.identity_code import (
    CODE_LIFETIME,
    REFRESH_LIFETIME,
    CodeError,
    Grant,
    Grants,
    client_info,
    loopback_redirect,
    redirect_to,
    sign_in_page,
)
from devstack.server import ServerThread
from devstack.tls import TLSFiles

TENANT_ID = "00000000-0000-0000-0000-0000000000e1"
"""The devstack Entra tenant: ``tid`` of every token, and the tenant in every endpoint's path."""
TENANT_DOMAIN = "devstack.example"
"""The tenant's domain: accepted in paths in place of :data:`TENANT_ID`, and the users' sign-in suffix."""
API_CLIENT_ID = "00000000-0000-0000-0000-0000000000a1"
"""The API app registration's client id: the ``aud`` of its access tokens."""
CLI_CLIENT_ID = "00000000-0000-0000-0000-0000000000c1"
"""The public client the CLI signs in as: the ``azp`` of its tokens."""
API_SCOPE = f"api://{API_CLIENT_ID}/.default"
"""What a client asks for to get a token for the API: every delegated permission it was granted."""
API_PERMISSION = "access_as_user"
"""The API's one delegated permission: the ``scp`` of its tokens."""
API_SCOPES = frozenset({API_SCOPE, f"api://{API_CLIENT_ID}/{API_PERMISSION}"})
"""The scopes the token endpoint grants (``{API_CLIENT_ID}/...`` without ``api://`` works too, as in Entra)."""
PERMISSIONS = frozenset({".default", API_PERMISSION})

GROUP_ML = "00000000-0000-0000-0000-000000006101"
"""The object id of the ``ml`` team's security group."""
GROUP_WEB = "00000000-0000-0000-0000-000000006102"
"""The object id of the ``web`` team's security group."""
TEAMS: dict[str, dict[str, list[str]]] = {"ml": {"groups": [GROUP_ML]}, "web": {"groups": [GROUP_WEB]}}
"""The teams of ``DISPATCHER_TEAMS``: each is the members of one group."""

TOKEN_LIFETIME = 3600
"""Seconds an access token from the token endpoint is valid for."""
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
"""Scopes a client may add to its request (MSAL always does); ``openid`` adds an ID token to the answer."""


@dataclass(frozen=True)
class DevUser:
    """A development user of the devstack tenant: who it is, its app roles on the API, and its groups."""

    name: str
    object_id: str
    display_name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]

    @property
    def username(self) -> str:
        """The sign-in name, ``{name}@devstack.example``: the ``preferred_username`` of its tokens."""
        return f"{self.name}@{TENANT_DOMAIN}"


_SUBMITTER = ("Jobs.Read", "Jobs.Submit")
_SCHEDULER = (*_SUBMITTER, "Schedules.Manage")
_ADMIN = ("Jobs.Admin", "Schedules.Manage")
DEV_USERS: dict[str, DevUser] = {
    user.name: user
    for user in (
        DevUser(
            "alice",
            "00000000-0000-0000-0000-00000000a11c",
            "Alice (ml)",
            (*_SUBMITTER, "Schedules.Manage"),
            (GROUP_ML,),
        ),
        DevUser("bob", "00000000-0000-0000-0000-000000000b0b", "Bob (web)", _SUBMITTER, (GROUP_WEB,)),
        DevUser("carol", "00000000-0000-0000-0000-00000000ca01", "Carol (ml, web)", _SUBMITTER, (GROUP_ML, GROUP_WEB)),
        DevUser("dana", "00000000-0000-0000-0000-00000000da4a", "Dana (ml, read only)", ("Jobs.Read",), (GROUP_ML,)),
        DevUser("admin", "00000000-0000-0000-0000-00000000ad01", "Devstack Admin", _ADMIN, ()),
    )
}
"""The tenant's users by name: each team's submitters, a reader, and an administrator in no team."""
DEFAULT_USER = "admin"
"""Who :meth:`devstack.stack.Stack.token` signs in as unless told otherwise."""


class UnknownUser(LookupError):
    """No development user has this name; the message lists those that exist."""


def dev_user(name: str) -> DevUser:
    """The development user called ``name`` (or whose sign-in name is ``name@devstack.example``, in any case).

    Raises :class:`UnknownUser` for anyone else.
    """
    wanted = name.strip().lower()
    suffix = f"@{TENANT_DOMAIN}"
    if wanted.endswith(suffix):
        wanted = wanted[: -len(suffix)]
    try:
        return DEV_USERS[wanted]
    except KeyError:
        raise UnknownUser(f"{name!r} is not a devstack user; they are {', '.join(DEV_USERS)}") from None


# --- the signing key --------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_signing_key(folder: Path) -> rsa.RSAPrivateKey:
    """The issuer's RSA key from ``folder/signing-key.pem``, created (mode 0600) if it is not there yet.

    Creation is atomic: two issuers starting on one empty folder end up with the same key.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "signing-key.pem"
    if not path.exists():
        pem = _generate_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        draft = folder / f".signing-key.{uuid.uuid4().hex}.tmp"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            with contextlib.suppress(FileExistsError):  # another issuer got there first: its key is the key
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    """A self-signed certificate for the key, as Entra publishes one (``x5c``) beside each signing key.

    Every field derives from the key and RSA PKCS#1 v1.5 signatures are deterministic, so the certificate, and so its
    thumbprint (the ``kid``), is the same each time it is built from the same key.
    """
    public = key.public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devstack identity issuer")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(int.from_bytes(hashlib.sha256(spki).digest()[:16], "big") >> 1 or 1)
        .not_valid_before(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2045, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class SigningKey:
    """An RSA key with its certificate; ``kid`` is the certificate's SHA-1 thumbprint, base64url, as Entra's are."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def of(cls, key: rsa.RSAPrivateKey) -> SigningKey:
        return cls(key, _certificate(key))

    @functools.cached_property
    def kid(self) -> str:
        return _b64url(self.certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is defined as SHA-1

    def jwk(self, issuer: str) -> dict[str, Any]:
        """The public key as Entra's v2.0 keys endpoint lists it."""
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")],
            "issuer": issuer,
        }


@functools.cache
def _foreign_key() -> rsa.RSAPrivateKey:
    """A key no issuer publishes, made once per process: what a forged token is signed with."""
    return _generate_key()


# --- errors -----------------------------------------------------------------------------------------------------


def _error(request: Request, status: int, error: str, code: int | None, message: str) -> Response:
    """An error in Entra's token-endpoint shape: ``error_description`` starts with the AADSTS code (when there is
    one; devstack's own refusals have none) and ends with the trace and correlation ids and the time."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    prefix = f"AADSTS{code}: " if code is not None else ""
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"{prefix}{message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}"
        f"\r\nTimestamp: {now}",
        "error_codes": [code] if code is not None else [],
        "timestamp": now,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    }
    if code is not None:
        body["error_uri"] = f"{str(request.base_url).rstrip('/')}/error?code={code}"
    # Errors close the connection, as the Key Vault emulator's do: a client keeping the failed response would
    # otherwise hold an idle TLS connection open and delay the issuer's shutdown.
    return JSONResponse(
        body,
        status_code=status,
        headers={
            "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache",
            "Connection": "close",
            "Access-Control-Allow-Origin": "*",
        },
    )


async def _unknown(request: Request, exc: Exception) -> Response:
    """A path the issuer lacks (authorize, device code, logout...): 501, in Entra's error shape."""
    return _error(
        request,
        501,
        "invalid_request",
        None,
        f"The devstack issuer does not implement {request.method} {request.url.path}; it serves the OpenID "
        "configuration, the signing keys, the authorize page and the token endpoint.",
    )


async def _wrong_method(request: Request, exc: Exception) -> Response:
    """A known endpoint called with the wrong method, answered as Entra answers it."""
    allowed = getattr(exc, "headers", None) or {}
    accepted = allowed.get("Allow", "").split(",")[0].strip() or "other"
    return _error(
        request,
        400,
        "invalid_request",
        900561,
        f"The endpoint only accepts {accepted} requests. Received a {request.method} request.",
    )


def _unknown_tenant(request: Request, error: str, tenant: str) -> Response:
    return _error(
        request,
        400,
        error,
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        f"correct cloud. The devstack tenant is {TENANT_ID} ({TENANT_DOMAIN}).",
    )


# --- the issuer -------------------------------------------------------------------------------------------------


class IdentityIssuer:
    """The devstack tenant's token issuer on ``https://127.0.0.1:PORT``, its signing key kept in ``state_dir``."""

    def __init__(self, state_dir: Path, tls: TLSFiles, port: int = 0) -> None:
        self.state_dir = state_dir
        self.signing = SigningKey.of(load_signing_key(state_dir))
        self._lock = threading.Lock()
        self.issued = 0
        """How many tokens the token endpoint issued."""
        routes = [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._configuration, methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", self._keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST", "OPTIONS"]),
            Route("/{tenant}/oauth2/v2.0/authorize", self._authorize, methods=["GET", "POST"]),
        ]
        self.grants = Grants()
        app = Starlette(routes=routes, exception_handlers={404: _unknown, 405: _wrong_method})
        self._server = ServerThread(app, port=port, tls=tls, name="identity")

    @property
    def url(self) -> str:
        """The login host, ``https://127.0.0.1:PORT`` (``https://login.microsoftonline.com`` in Azure); valid once
        started."""
        return self._server.url

    @property
    def authority(self) -> str:
        """``{url}/{TENANT_ID}/v2.0``: the ``issuer`` of the discovery document and the ``iss`` of every token."""
        return f"{self.url}/{TENANT_ID}/v2.0"

    @property
    def kid(self) -> str:
        """The signing key's id: the ``kid`` of every token's header."""
        return self.signing.kid

    @property
    def configuration_url(self) -> str:
        return f"{self.authority}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/{TENANT_ID}/discovery/v2.0/keys"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{TENANT_ID}/oauth2/v2.0/token"

    def start(self) -> IdentityIssuer:
        """Serve; returns ``self``."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving. The signing key stays in the state folder."""
        self._server.stop()

    def __enter__(self) -> IdentityIssuer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- tokens -------------------------------------------------------------------------------------------------

    def token(
        self,
        user: str | DevUser,
        *,
        audience: str | None = None,
        lifetime: float = TOKEN_LIFETIME,
        issued_at: float | None = None,
        roles: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        issuer: str | None = None,
        foreign_key: bool = False,
        client_id: str = CLI_CLIENT_ID,
    ) -> str:
        """An access token for ``user``, as the token endpoint issues it, or altered for a test.

        ``audience`` (default :data:`API_CLIENT_ID`), ``issuer`` (default :attr:`authority`), ``roles`` and
        ``groups`` (default the user's; empty ones are left out of the token, as Entra leaves them out) replace the
        claims; ``issued_at`` (default now, epoch seconds) and ``lifetime`` (seconds, negative for a token that has
        already expired) set ``iat``, ``nbf`` and ``exp``: an ``issued_at`` in the future gives a token that is not
        valid yet. ``foreign_key`` signs with a key the issuer does not publish, under the issuer's ``kid``: a
        forgery whose signature does not verify. Raises :class:`UnknownUser`, and ``RuntimeError`` if no ``issuer``
        is given before the issuer started (its URL, and so its authority, is not known yet).
        """
        chosen = user if isinstance(user, DevUser) else dev_user(user)
        claims = self._access_claims(
            chosen,
            client_id=client_id,
            audience=API_CLIENT_ID if audience is None else audience,
            issuer=self._authority_or_fail() if issuer is None else issuer,
            issued_at=time.time() if issued_at is None else issued_at,
            lifetime=lifetime,
            roles=chosen.roles if roles is None else tuple(roles),
            groups=chosen.groups if groups is None else tuple(groups),
        )
        return self._sign(claims, foreign_key=foreign_key)

    def _authority_or_fail(self) -> str:
        if not self._server.port:
            raise RuntimeError("the identity issuer has no URL until it is started; start it or pass issuer=")
        return self.authority

    def _sign(self, claims: dict[str, Any], *, foreign_key: bool = False) -> str:
        key = _foreign_key() if foreign_key else self.signing.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"typ": "JWT", "kid": self.kid})

    def _access_claims(
        self,
        user: DevUser,
        *,
        client_id: str,
        audience: str,
        issuer: str,
        issued_at: float,
        lifetime: float,
        roles: tuple[str, ...],
        groups: tuple[str, ...],
    ) -> dict[str, Any]:
        iat = int(issued_at)
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": iat,
            "nbf": iat,
            "exp": iat + round(lifetime),
            "aio": _opaque(24),
            "azp": client_id,
            "azpacr": "0",
            "name": user.display_name,
            "oid": user.object_id,
            "preferred_username": user.username,
            "rh": f"0.{_opaque(48)}.",
            "roles": list(roles),
            "groups": list(groups),
            "scp": API_PERMISSION,
            "sub": _pairwise_subject(user, audience),
            "tid": TENANT_ID,
            "uti": _opaque(16),
            "ver": "2.0",
        }
        return {name: value for name, value in claims.items() if value != []}

    def _id_token(self, user: DevUser, client_id: str, issued_at: float, nonce: str = "") -> str:
        iat = int(issued_at)
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self.authority,
            "iat": iat,
            "nbf": iat,
            "exp": iat + TOKEN_LIFETIME,
            "name": user.display_name,
            "oid": user.object_id,
            "preferred_username": user.username,
            "rh": f"0.{_opaque(48)}.",
            "sub": _pairwise_subject(user, client_id),
            "tid": TENANT_ID,
            "uti": _opaque(16),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims)

    # --- requests -----------------------------------------------------------------------------------------------

    def _configuration_document(self) -> dict[str, Any]:
        base = f"{self.url}/{TENANT_ID}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.authority,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    async def _configuration(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not _is_tenant(tenant):
            return _unknown_tenant(request, "invalid_tenant", tenant)
        return JSONResponse(
            self._configuration_document(),
            headers={"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"},
        )

    async def _keys(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not _is_tenant(tenant):
            return _unknown_tenant(request, "invalid_tenant", tenant)
        return JSONResponse(
            {"keys": [self.signing.jwk(self.authority)]},
            headers={"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"},
        )

    async def _token(self, request: Request) -> Response:
        if request.method == "OPTIONS":  # a browser's preflight: the dashboard calls across origins
            return Response(status_code=204, headers=CORS_PREFLIGHT)
        tenant = request.path_params["tenant"]
        if not _is_tenant(tenant):
            return _unknown_tenant(request, "invalid_request", tenant)
        form = _form(await request.body()) if _is_form(request) else {}
        for required in ("grant_type", "client_id"):
            if not form.get(required):
                return _missing(request, required)
        grant = form["grant_type"]
        if grant == "password":
            return self._password_grant(request, form, tenant)
        if grant in ("authorization_code", "refresh_token"):
            return self._code_grant(request, form, tenant)
        return _error(
            request,
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'. The devstack issuer supports 'password', "
            "'authorization_code' and 'refresh_token'.",
        )

    def _password_grant(self, request: Request, form: dict[str, str], tenant: str) -> Response:
        for required in ("username", "scope"):
            if not form.get(required):
                return _missing(request, required)
        scopes = form["scope"].split()
        refusal = _scope_refusal(request, scopes, tenant)
        if refusal is not None:
            return refusal
        try:
            user = dev_user(form["username"])
        except UnknownUser:
            return _error(
                request,
                400,
                "invalid_grant",
                50034,
                f"The user account {form['username']} does not exist in the {TENANT_ID} directory. To sign into "
                f"this application, the account must be added to the directory. The devstack users are "
                f"{', '.join(DEV_USERS)}.",
            )
        return self._tokens(user, form["client_id"], scopes)

    def _code_grant(self, request: Request, form: dict[str, str], tenant: str) -> Response:
        """The ``authorization_code`` and ``refresh_token`` grants: a single-page application's, with a new refresh
        token each time."""
        by_code = form["grant_type"] == "authorization_code"
        for required in ("code", "redirect_uri") if by_code else ("refresh_token",):
            if not form.get(required):
                return _missing(request, required)
        try:
            if by_code:
                grant = self.grants.redeem_code(
                    form["code"], form["client_id"], form["redirect_uri"], form.get("code_verifier", "")
                )
            else:
                grant = self.grants.redeem_refresh(form["refresh_token"], form["client_id"])
        except CodeError as refused:
            return _error(request, 400, refused.error, refused.code, str(refused))
        scopes = form["scope"].split() if form.get("scope") else list(grant.scopes)
        refusal = _scope_refusal(request, scopes, tenant)
        if refusal is not None:
            return refusal
        refresh = Grant(grant.user, grant.client_id, tuple(scopes), time.time() + REFRESH_LIFETIME)
        extra = {
            "refresh_token": self.grants.issue_refresh(refresh),
            "refresh_token_expires_in": REFRESH_LIFETIME,
            "client_info": client_info(grant.user, TENANT_ID),
        }
        return self._tokens(grant.user, grant.client_id, scopes, nonce=grant.nonce if by_code else "", extra=extra)

    def _tokens(
        self,
        user: DevUser,
        client_id: str,
        scopes: list[str],
        *,
        nonce: str = "",
        extra: dict[str, Any] | None = None,
    ) -> Response:
        now = time.time()
        granted = [f"api://{API_CLIENT_ID}/{API_PERMISSION}", *(s for s in scopes if s in OIDC_SCOPES)]
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(granted),
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self.token(user, issued_at=now, client_id=client_id),
            **(extra or {}),
        }
        if "openid" in scopes:
            answer["id_token"] = self._id_token(user, client_id, now, nonce=nonce)
        with self._lock:
            self.issued += 1
        return JSONResponse(
            answer,
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "Access-Control-Allow-Origin": "*"},
        )

    async def _authorize(self, request: Request) -> Response:
        """The authorization endpoint: the sign-in page (``GET``), and the chosen user's code sent to the redirect
        URI (a ``login_hint`` naming a development user, in the query or posted from the page)."""
        tenant = request.path_params["tenant"]
        if not _is_tenant(tenant):
            return _unknown_tenant(request, "invalid_tenant", tenant)
        fields = dict(request.query_params.items())
        if request.method == "POST":
            fields.update(_form(await request.body()))
        redirect_uri = fields.get("redirect_uri", "")
        if not loopback_redirect(redirect_uri):
            return _error(
                request,
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                "configured for the application. Devstack accepts only loopback redirect URIs.",
            )
        mode = fields.get("response_mode", "query")
        state = {"state": fields["state"]} if "state" in fields else {}

        def refuse(error: str, code: int, message: str) -> Response:
            description = f"AADSTS{code}: {message}"
            return RedirectResponse(
                redirect_to(redirect_uri, mode, {"error": error, "error_description": description, **state}), 302
            )

        for required in ("client_id", "response_type", "scope"):
            if not fields.get(required):
                return refuse("invalid_request", 900144, f"The request must contain the parameter '{required}'.")
        if fields["response_type"] != "code":
            return refuse("unsupported_response_type", 70005, "The devstack issuer supports response_type=code only.")
        if fields.get("code_challenge_method", "plain") != "S256" or not fields.get("code_challenge"):
            return refuse("invalid_request", 9002325, "Proof Key for Code Exchange (S256) is required.")
        scopes = fields["scope"].split()
        problem = _scope_problem(scopes, tenant)
        if problem is not None:
            return refuse(*problem)
        hint = fields.get("login_hint", "")
        if not hint:
            if fields.get("prompt") == "none":
                return refuse("login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
            return HTMLResponse(
                sign_in_page(list(DEV_USERS.values()), fields),
                headers={"Cache-Control": "no-store", "Content-Security-Policy": SIGN_IN_POLICY},
            )
        try:
            user = dev_user(hint)
        except UnknownUser:
            return refuse("invalid_grant", 50034, f"The user account {hint} does not exist in the devstack directory.")
        grant = Grant(
            user,
            fields["client_id"],
            tuple(scopes),
            time.time() + CODE_LIFETIME,
            redirect_uri=redirect_uri,
            challenge=fields["code_challenge"],
            nonce=fields.get("nonce", ""),
        )
        answer = {
            "code": self.grants.issue_code(grant),
            **state,
            "client_info": client_info(user, TENANT_ID),
            "session_state": _opaque(16),
        }
        return RedirectResponse(redirect_to(redirect_uri, mode, answer), 302)


SIGN_IN_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""The sign-in page's Content Security Policy: no script, no framing. Not ``form-action``: browsers apply it to the
redirect that answers the form too, which goes to the application."""
CORS_PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}
"""What the token endpoint answers a browser's preflight: any origin may redeem its own code or refresh token."""


def _is_tenant(tenant: str) -> bool:
    return tenant.lower() in {TENANT_ID, TENANT_DOMAIN}


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def _form(body: bytes) -> dict[str, str]:
    """The form's fields, the first value of each."""
    return {name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}


def _missing(request: Request, field: str) -> Response:
    return _error(
        request, 400, "invalid_request", 900144, f"The request body must contain the following parameter: '{field}'."
    )


GRAPH = "https://graph.microsoft.com"
"""The resource Entra assumes for a scope that names none (``User.Read``)."""


def _scope(scope: str) -> tuple[str, str]:
    """A requested scope as (resource, permission); the API's bare client id counts as its ``api://`` URI."""
    rest = scope.removeprefix("api://")
    if "/" not in rest:
        return GRAPH, scope
    resource, _, permission = scope.rpartition("/")
    return (f"api://{API_CLIENT_ID}" if resource == API_CLIENT_ID else resource), permission


def _scope_refusal(request: Request, scopes: list[str], tenant: str) -> Response | None:
    """The token endpoint's answer to scopes it cannot grant, or ``None``."""
    problem = _scope_problem(scopes, tenant)
    return None if problem is None else _error(request, 400, *problem)


def _scope_problem(scopes: list[str], tenant: str) -> tuple[str, int, str] | None:
    """Why the requested scopes cannot be granted (error, AADSTS code, message), or ``None``: one resource, the API,
    plus any OpenID scopes."""
    wanted = [s for s in scopes if s not in OIDC_SCOPES]
    if not wanted:
        return (
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope '{' '.join(scopes)}' asks "
            f"for no resource; the devstack issuer grants {API_SCOPE}.",
        )
    parsed = [_scope(s) for s in wanted]
    resources = {resource for resource, _ in parsed}
    if len(resources) > 1:
        return (
            "invalid_scope",
            28000,
            f"Provided value for the input parameter scope '{' '.join(scopes)}' is not valid because it contains more "
            "than one resource. Scope can only be requested for one resource at a time.",
        )
    resource = resources.pop()
    if resource != f"api://{API_CLIENT_ID}":
        return (
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if "
            "the application has not been installed by the administrator of the tenant or consented to by any user "
            "in the tenant. You might have sent your authentication request to the wrong tenant. The devstack "
            f"tenant's one API is api://{API_CLIENT_ID}.",
        )
    unknown = [s for s, (_, permission) in zip(wanted, parsed, strict=True) if permission not in PERMISSIONS]
    if unknown:
        return (
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope {' '.join(unknown)} is not "
            f"valid; the API grants {' and '.join(sorted(API_SCOPES))}.",
        )
    return None


def _pairwise_subject(user: DevUser, audience: str) -> str:
    """``sub``: stable for a user and an application, different between applications, as Entra's pairwise ones."""
    return _b64url(hashlib.sha256(f"{TENANT_ID}\0{user.object_id}\0{audience}".encode()).digest())


def _opaque(size: int) -> str:
    """A fresh opaque value for the claims Entra documents as internal (``aio``, ``rh``, ``uti``)."""
    return _b64url(os.urandom(size))

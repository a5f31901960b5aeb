"""Entra ID access tokens, validated in the app with PyJWT against the issuer's OpenID configuration and keys.

The issuer is the tenant's v2.0 authority (``https://login.microsoftonline.com/{tenant}/v2.0`` in the public
cloud, devstack's issuer locally): its discovery document names the JSON Web Key Set, and a token is accepted only
when it is signed (RS256) by one of those keys, names that issuer and the API's audience (its client id, or the
``api://`` URI of v1 tokens), belongs to the configured tenant, and is within its lifetime (a minute of skew
allowed, as Microsoft's middleware does). Keys are cached and fetched again when a token names an unknown key id,
which is how a signing-key rollover reaches us.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from typing import Any

import jwt
import requests

from dispatcher.domain.errors import CloudError, InvalidToken, UnsafeConfiguration
from dispatcher.endpoints import authority_of, parsed
from dispatcher.settings import DispatcherSettings

LEEWAY_SECONDS = 60
"""Clock skew allowed on ``exp`` and ``nbf``."""
KEYS_LIFESPAN_SECONDS = 24 * 3600
"""How long fetched signing keys are used before they are read again (an unknown key id reads them at once)."""
TIMEOUT_SECONDS = 10


class EntraTokens:
    """The Tokens port over PyJWT."""

    def __init__(self, settings: DispatcherSettings) -> None:
        if not settings.auth_audience or not settings.auth_tenant_id:
            raise UnsafeConfiguration("sign-in needs DISPATCHER_AUTH_AUDIENCE and DISPATCHER_AUTH_TENANT_ID")
        self._authority = authority_of(settings)
        self._audience = [settings.auth_audience, f"api://{settings.auth_audience}"]
        self._tenant = settings.auth_tenant_id
        self._verify: str | bool = settings.tls_ca_bundle or True
        self._ssl = ssl.create_default_context(cafile=settings.tls_ca_bundle or None)
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _key_set(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._keys is None:
                url = f"{self._authority}/.well-known/openid-configuration"
                try:
                    response = requests.get(url, timeout=TIMEOUT_SECONDS, verify=self._verify)
                    response.raise_for_status()
                    document = response.json()
                except (requests.RequestException, ValueError) as exc:
                    reason = f"read the token issuer's configuration: {type(exc).__name__}"
                    raise CloudError(reason, transient=True) from None
                if not isinstance(document, dict) or document.get("issuer") != self._authority:
                    raise UnsafeConfiguration("the token issuer's configuration names another issuer")
                jwks_uri = str(document.get("jwks_uri") or "")
                if (
                    parsed("jwks_uri", jwks_uri, schemes=("https",), path=True).host
                    != parsed("authority", self._authority, schemes=("https", "http"), path=True).host
                ):
                    raise UnsafeConfiguration("the token issuer's keys are on another host")
                self._keys = jwt.PyJWKClient(
                    jwks_uri, lifespan=KEYS_LIFESPAN_SECONDS, timeout=TIMEOUT_SECONDS, ssl_context=self._ssl
                )
            return self._keys

    def claims(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the bearer token is not a JWT") from None
        if header.get("alg") != "RS256" or not header.get("kid"):
            raise InvalidToken("the bearer token is not signed with RS256 by a named key")
        try:
            key = self._key_set().get_signing_key(str(header["kid"]))
        except jwt.PyJWKClientConnectionError:
            raise CloudError("read the token issuer's signing keys", transient=True) from None
        except jwt.PyJWKClientError:
            raise InvalidToken("the bearer token is signed by a key the issuer does not publish") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=self._authority,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "oid", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the bearer token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the bearer token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise InvalidToken("the bearer token's signature or claims are invalid") from None
        if claims.get("tid") != self._tenant:
            raise InvalidToken("the bearer token is from another tenant")
        return claims

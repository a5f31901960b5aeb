"""The devstack issuer's authorization code flow with PKCE, as a single-page application (MSAL.js) uses it.

What Entra does, after the Microsoft identity platform's "OAuth 2.0 authorization code flow" and "single-page
application" pages, and what devstack keeps of it:

* ``GET /{tenant}/oauth2/v2.0/authorize`` with ``client_id``, ``response_type=code``, ``redirect_uri``, ``scope``,
  ``state``, ``nonce``, ``code_challenge`` and ``code_challenge_method=S256``: a sign-in page. Instead of a password
  form it lists the development users, each a button; ``login_hint`` naming one signs in at once, and
  ``prompt=none`` (a silent sign-in: there is never a session here) answers ``login_required``. Only loopback
  redirect URIs are accepted: devstack has no app registrations to check them against, and a code must never go
  to another host.
* The answer goes to the redirect URI in the fragment or the query (``response_mode``, default query) with ``code``,
  ``state``, ``client_info`` (base64url JSON of ``uid`` and ``utid``, which MSAL builds the account's id from) and
  ``session_state``; an error goes there as ``error`` and ``error_description``.
* The token endpoint's ``authorization_code`` grant redeems a code once, within ten minutes, for the same client and
  redirect URI, with the ``code_verifier`` whose SHA-256 is the challenge (PKCE is required, as Entra requires it of
  SPA redirect URIs). ``refresh_token`` redeems a refresh token for new tokens (24 hours, as Entra's SPA ones).
  Answers carry ``Access-Control-Allow-Origin: *``: the browser calls the token endpoint across origins.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from devstack.identity import DevUser

CODE_LIFETIME = 600
"""Seconds an authorization code may be redeemed in (Entra: about ten minutes)."""
REFRESH_LIFETIME = 86400
"""Seconds a refresh token issued to a single-page application lives (Entra: 24 hours)."""
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class CodeError(Exception):
    """A refused request: ``error`` is the OAuth error, ``code`` the AADSTS number, the message the description."""

    def __init__(self, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.code = code


@dataclass(frozen=True)
class Grant:
    """Who signed in, to which client, for what: behind a code (with its redirect and challenge) or a refresh."""

    user: DevUser
    client_id: str
    scopes: tuple[str, ...]
    expires: float
    redirect_uri: str = ""
    challenge: str = ""
    nonce: str = ""


def client_info(user: DevUser, tenant: str) -> str:
    """``client_info``: base64url of ``{"uid": oid, "utid": tid}``, as Entra returns it (``client_info=1``)."""
    raw = json.dumps({"uid": user.object_id, "utid": tenant}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def loopback_redirect(uri: str) -> bool:
    """Whether ``uri`` is an absolute http(s) URL on this machine, without a fragment: the only redirects allowed."""
    parts = urlsplit(uri)
    return parts.scheme in {"http", "https"} and (parts.hostname or "") in LOOPBACK and not parts.fragment


def redirect_to(uri: str, mode: str, fields: dict[str, str]) -> str:
    """``uri`` with ``fields`` in its fragment (``response_mode=fragment``) or its query."""
    encoded = urlencode(fields)
    if mode == "fragment":
        return f"{uri}#{encoded}"
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{encoded}"


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


class Grants:
    """The issued codes and refresh tokens, in memory: each code redeemed at most once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}

    def issue_code(self, grant: Grant) -> str:
        code = secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = grant
        return code

    def issue_refresh(self, grant: Grant) -> str:
        token = secrets.token_urlsafe(64)
        with self._lock:
            self._refresh[token] = grant
        return token

    def redeem_code(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> Grant:
        """The grant behind ``code``, which is spent; raises :class:`CodeError` as Entra refuses."""
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or grant.expires < time.time():
            raise CodeError(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity, or was already "
                "redeemed. Send a new interactive authorization request for this user and resource.",
            )
        if grant.client_id != client_id:
            raise CodeError("invalid_grant", 70000, "The provided authorization code was issued to another client.")
        if grant.redirect_uri != redirect_uri:
            raise CodeError(
                "invalid_grant",
                50148,
                "The redirect_uri of the token request does not match the one the authorization code was issued for.",
            )
        if not verifier:
            raise CodeError(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
            )
        if not secrets.compare_digest(s256(verifier), grant.challenge):
            raise CodeError(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            )
        return grant

    def redeem_refresh(self, token: str, client_id: str) -> Grant:
        """The grant behind refresh ``token`` (spent: Entra rotates a SPA's refresh tokens)."""
        with self._lock:
            grant = self._refresh.pop(token, None)
        if grant is None or grant.expires < time.time() or grant.client_id != client_id:
            raise CodeError(
                "invalid_grant",
                700084,
                "The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited "
                "lifetime, which has expired or was already used; or it was issued to another client.",
            )
        return grant


def sign_in_page(users: list[DevUser], fields: dict[str, str]) -> str:
    """The sign-in page: one button per development user, the request's parameters carried in hidden fields."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    buttons = "".join(
        f'<li><button type="submit" name="login_hint" value="{html.escape(user.username)}">'
        f"{html.escape(user.display_name)} &lt;{html.escape(user.username)}&gt;</button></li>"
        for user in users
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · devstack</title></head><body>'
        "<main><h1>Sign in to the devstack tenant</h1><p>Pick a development user (no password here).</p>"
        f'<form method="post">{hidden}<ul>{buttons}</ul></form></main></body></html>'
    )

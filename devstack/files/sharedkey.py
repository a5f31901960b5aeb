"""Verify Azure Storage SharedKey signatures on incoming requests.

The string-to-sign follows the Storage "Authorize with Shared Key" specification, as the
``azure-storage-*`` clients build it: the verb, eleven standard headers, the canonicalized
``x-ms-*`` headers and the canonicalized resource (``/account`` + the encoded request path,
then each query parameter as ``name:value`` on its own line).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cmp_to_key
from urllib.parse import unquote

_STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


class AuthenticationFailed(Exception):
    """The request's ``Authorization`` header is missing, malformed or does not verify; the message says which."""


@dataclass(frozen=True)
class SignedRequest:
    """What a SharedKey signature covers, taken from the request as it arrived on the wire."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    """Header names in lower case."""


_IGNORED_FIRST = {"-": 2, "'": 1}
"""Characters the service's header ordering skips at first, with their weight when it breaks ties."""


def _tie_break(lhs: str, rhs: str) -> int:
    # Second pass of the service's comparison: walk both names together and decide at the first
    # place where only one of them has a skipped character (or ends).
    i = j = 0
    while True:
        if i != j:
            return -1 if i > j else 1
        w1 = _IGNORED_FIRST.get(lhs[i], 0) + 1 if i < len(lhs) else 0
        w2 = _IGNORED_FIRST.get(rhs[j], 0) + 1 if j < len(rhs) else 0
        if w1 == 0 and w2 == 0:
            return 0
        if w1 == w2:
            i, j = i + 1, j + 1
        elif w1 == 1:
            i += 1
        elif w2 == 1:
            j += 1
        else:
            return -1 if w1 < w2 else 1


def _compare_header_names(lhs: str, rhs: str) -> int:
    # The service orders x-ms-* headers with a culture-aware comparison: hyphens and apostrophes
    # are ignored first and only then tell otherwise equal names apart.
    lhs_key = "".join(c for c in lhs if c not in _IGNORED_FIRST)
    rhs_key = "".join(c for c in rhs if c not in _IGNORED_FIRST)
    if lhs_key != rhs_key:
        return -1 if lhs_key < rhs_key else 1
    return _tie_break(lhs, rhs)


def canonicalized_headers(headers: Mapping[str, str]) -> str:
    """The ``x-ms-*`` headers, lower-cased and sorted the way the service sorts them, one ``name:value\\n`` each."""
    names = sorted(
        (name.lower() for name in headers if name.lower().startswith("x-ms-")), key=cmp_to_key(_compare_header_names)
    )
    return "".join(f"{name}:{headers[name]}\n" for name in names)


def canonicalized_resource(account: str, raw_path: str, raw_query: str) -> str:
    """``/account/encoded/path`` then ``\\nname:decoded value`` for each query parameter, sorted by name."""
    params: dict[str, str] = {}
    for pair in raw_query.split("&") if raw_query else []:
        name, _, value = pair.partition("=")
        params[name] = value
    resource = f"/{account}{raw_path}"
    for name, value in sorted(params.items()):
        resource += f"\n{name.lower()}:{unquote(value)}"
    return resource


def string_to_sign(account: str, request: SignedRequest) -> str:
    """The exact text the client signed for ``request`` with ``account``'s key."""
    standard = []
    for name in _STANDARD_HEADERS:
        value = request.headers.get(name, "")
        if name == "content-length" and value == "0":
            value = ""
        standard.append(value)
    return (
        request.method.upper()
        + "\n"
        + "\n".join(standard)
        + "\n"
        + canonicalized_headers(request.headers)
        + canonicalized_resource(account, request.raw_path, request.raw_query)
    )


def sign(key_base64: str, text: str) -> str:
    """Base64 HMAC-SHA256 of ``text`` under the base64-decoded account key."""
    digest = hmac.new(base64.b64decode(key_base64), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(request: SignedRequest, accounts: Mapping[str, str]) -> str:
    """Return the account name whose key signed ``request``.

    Raises :class:`AuthenticationFailed` when the ``Authorization`` header is absent, is not
    ``SharedKey account:signature``, names an unknown account, or carries a wrong signature.
    """
    header = request.headers.get("authorization", "")
    if not header:
        raise AuthenticationFailed("The Authorization header is missing.")
    scheme, _, credentials = header.partition(" ")
    account, separator, signature = credentials.strip().partition(":")
    if scheme != "SharedKey" or not separator or not account or not signature:
        raise AuthenticationFailed("The Authorization header is not of the form 'SharedKey account:signature'.")
    key = accounts.get(account)
    if key is None:
        raise AuthenticationFailed(f"The account {account!r} does not exist here.")
    try:
        given = base64.b64decode(signature, validate=True)
    except binascii.Error as error:
        raise AuthenticationFailed("The signature is not valid base64.") from error
    expected = base64.b64decode(sign(key, string_to_sign(account, request)))
    if not hmac.compare_digest(given, expected):
        raise AuthenticationFailed(
            "The MAC signature found in the HTTP request is not the same as any computed signature."
        )
    return account

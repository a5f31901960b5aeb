"""The devstack Entra ID issuer, driven the way the API validates its tokens: discovery, then PyJWT's PyJWKClient."""

from __future__ import annotations

import base64
import json
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests

from devstack.identity import (
    API_CLIENT_ID,
    API_SCOPE,
    CLI_CLIENT_ID,
    DEV_USERS,
    GROUP_ML,
    GROUP_WEB,
    TENANT_ID,
    IdentityIssuer,
    UnknownUser,
    dev_user,
)
from devstack.identity_code import s256
from devstack.tls import TLSFiles


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("identity")


@pytest.fixture(scope="module")
def issuer(state_dir: Path, dev_tls: TLSFiles) -> Iterator[IdentityIssuer]:
    with IdentityIssuer(state_dir, dev_tls) as started:
        yield started


@pytest.fixture(scope="module")
def session(dev_tls: TLSFiles) -> Iterator[requests.Session]:
    with requests.Session() as opened:
        opened.verify = str(dev_tls.ca)
        opened.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, wins over the session's verify
        yield opened


@pytest.fixture(scope="module")
def configuration(issuer: IdentityIssuer, session: requests.Session) -> dict[str, Any]:
    answer = session.get(f"{issuer.authority}/.well-known/openid-configuration", timeout=10)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


@pytest.fixture(scope="module")
def keys(configuration: dict[str, Any], dev_tls: TLSFiles) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(configuration["jwks_uri"], ssl_context=ssl.create_default_context(cafile=str(dev_tls.ca)))


def _validate(token: str, keys: jwt.PyJWKClient, issuer: IdentityIssuer) -> dict[str, Any]:
    """What the API does with a bearer token."""
    key = keys.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=API_CLIENT_ID, issuer=issuer.authority
    )
    return claims


def _sign_in(session: requests.Session, issuer: IdentityIssuer, **form: str) -> requests.Response:
    fields = {"grant_type": "password", "client_id": CLI_CLIENT_ID, "scope": API_SCOPE, "password": "any"} | form
    return session.post(issuer.token_endpoint, data=fields, timeout=10)


# --- discovery ----------------------------------------------------------------------------------------------------


def test_discovery_document_names_the_tenant_endpoints(configuration: dict[str, Any], issuer: IdentityIssuer) -> None:
    base = f"{issuer.url}/{TENANT_ID}"

    assert configuration["issuer"] == issuer.authority == f"{base}/v2.0"
    assert configuration["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert configuration["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert configuration["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert configuration["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert configuration["id_token_signing_alg_values_supported"] == ["RS256"]
    assert configuration["subject_types_supported"] == ["pairwise"]
    assert "code" in configuration["response_types_supported"]
    assert "openid" in configuration["scopes_supported"]
    assert {"sub", "iss", "aud", "tid", "preferred_username"} <= set(configuration["claims_supported"])
    assert configuration["tenant_region_scope"]
    assert configuration["cloud_instance_name"] == "microsoftonline.com"


def test_discovery_of_an_unknown_tenant_is_an_entra_400(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = session.get(f"{issuer.url}/contoso.example/v2.0/.well-known/openid-configuration", timeout=10)

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_tenant"
    assert body["error_description"].startswith("AADSTS90002: Tenant 'contoso.example' not found.")
    assert body["error_codes"] == [90002]


def test_signing_keys_are_published_as_entra_publishes_them(
    configuration: dict[str, Any], issuer: IdentityIssuer, session: requests.Session
) -> None:
    [key] = session.get(configuration["jwks_uri"], timeout=10).json()["keys"]

    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert key["kid"] == key["x5t"] == issuer.kid
    assert key["e"] == "AQAB"
    assert key["n"]
    assert len(key["x5c"]) == 1
    assert key["issuer"] == issuer.authority


# --- the token endpoint -------------------------------------------------------------------------------------------


def test_password_grant_token_validates_and_carries_the_users_claims(
    issuer: IdentityIssuer, session: requests.Session, keys: jwt.PyJWKClient, configuration: dict[str, Any]
) -> None:
    answer = _sign_in(session, issuer, username="carol")

    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3600
    assert body["scope"] == f"api://{API_CLIENT_ID}/access_as_user"
    claims = _validate(body["access_token"], keys, issuer)
    carol = DEV_USERS["carol"]
    assert claims["iss"] == configuration["issuer"]
    assert claims["aud"] == API_CLIENT_ID
    assert claims["tid"] == TENANT_ID
    assert claims["oid"] == carol.object_id
    assert claims["roles"] == ["Jobs.Read", "Jobs.Submit"]
    assert claims["groups"] == [GROUP_ML, GROUP_WEB]
    assert claims["azp"] == CLI_CLIENT_ID
    assert claims["scp"] == "access_as_user"
    assert claims["preferred_username"] == "carol@devstack.example"
    assert claims["ver"] == "2.0"
    assert claims["exp"] - claims["iat"] == 3600


def test_token_header_is_an_entra_v2_header(issuer: IdentityIssuer, session: requests.Session) -> None:
    token = _sign_in(session, issuer, username="alice").json()["access_token"]

    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "RS256", "kid": issuer.kid}


def test_the_subject_is_stable_per_user(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    first = _validate(issuer.token("alice"), keys, issuer)
    again = _validate(issuer.token("alice"), keys, issuer)
    other = _validate(issuer.token("bob"), keys, issuer)

    assert first["sub"] == again["sub"] != other["sub"]
    assert first["uti"] != again["uti"]


def test_an_admin_in_no_group_has_no_groups_claim(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    claims = _validate(issuer.token("admin"), keys, issuer)

    assert "groups" not in claims
    assert claims["roles"] == ["Jobs.Admin", "Schedules.Manage"]


def test_the_access_as_user_scope_and_openid_scopes_are_granted(
    issuer: IdentityIssuer, session: requests.Session, keys: jwt.PyJWKClient
) -> None:
    scope = f"api://{API_CLIENT_ID}/access_as_user openid profile offline_access"

    answer = _sign_in(session, issuer, username="dana", scope=scope, client_id="another-client")

    assert answer.status_code == 200
    body = answer.json()
    claims = _validate(body["access_token"], keys, issuer)
    assert claims["roles"] == ["Jobs.Read"]
    assert claims["azp"] == "another-client"
    identity = jwt.decode(
        body["id_token"], issuer.signing.key.public_key(), algorithms=["RS256"], audience="another-client"
    )
    assert identity["oid"] == DEV_USERS["dana"].object_id


def test_an_unknown_user_is_invalid_grant(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = _sign_in(session, issuer, username="mallory")

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"].startswith("AADSTS50034: The user account mallory does not exist")
    assert body["error_codes"] == [50034]
    assert body["trace_id"]
    assert body["correlation_id"]
    assert body["timestamp"]


def test_a_scope_of_another_resource_is_an_unknown_resource(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = _sign_in(session, issuer, username="alice", scope="api://00000000-0000-0000-0000-00000000beef/.default")

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_resource"
    assert body["error_description"].startswith("AADSTS500011: The resource principal named api://")


def test_an_unknown_scope_of_the_api_is_invalid_scope(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = _sign_in(session, issuer, username="alice", scope=f"api://{API_CLIENT_ID}/Jobs.Everything")

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_scope"
    assert body["error_description"].startswith("AADSTS70011:")


def test_another_grant_type_is_unsupported(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = _sign_in(session, issuer, grant_type="client_credentials", client_secret="s")

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "unsupported_grant_type"
    assert body["error_description"].startswith("AADSTS70003:")


def test_a_missing_username_names_the_parameter(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = _sign_in(session, issuer)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "'username'" in answer.json()["error_description"]


def test_an_unimplemented_endpoint_answers_in_entras_shape(issuer: IdentityIssuer, session: requests.Session) -> None:
    answer = session.post(f"{issuer.url}/{TENANT_ID}/oauth2/v2.0/devicecode", timeout=10)

    assert answer.status_code == 501
    assert answer.json()["error"] == "invalid_request"


# --- tokens minted for tests --------------------------------------------------------------------------------------


def test_a_token_with_a_negative_lifetime_is_expired(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    token = issuer.token("alice", lifetime=-10)

    with pytest.raises(jwt.ExpiredSignatureError):
        _validate(token, keys, issuer)


def test_a_token_issued_in_the_future_is_not_yet_valid(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    token = issuer.token("alice", issued_at=time.time() + 600)

    with pytest.raises(jwt.ImmatureSignatureError):
        _validate(token, keys, issuer)


def test_a_token_for_another_audience_is_refused(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    token = issuer.token("alice", audience="https://management.azure.com")

    with pytest.raises(jwt.InvalidAudienceError):
        _validate(token, keys, issuer)


def test_a_token_from_another_issuer_is_refused(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    token = issuer.token("alice", issuer="https://login.microsoftonline.com/another-tenant/v2.0")

    with pytest.raises(jwt.InvalidIssuerError):
        _validate(token, keys, issuer)


def test_a_token_signed_with_a_foreign_key_fails_signature_verification(
    issuer: IdentityIssuer, keys: jwt.PyJWKClient
) -> None:
    token = issuer.token("alice", foreign_key=True)

    assert jwt.get_unverified_header(token)["kid"] == issuer.kid
    with pytest.raises(jwt.InvalidSignatureError):
        _validate(token, keys, issuer)


def test_roles_and_groups_can_be_replaced(issuer: IdentityIssuer, keys: jwt.PyJWKClient) -> None:
    claims = _validate(issuer.token(DEV_USERS["bob"], roles=["Jobs.Admin"], groups=[]), keys, issuer)

    assert claims["roles"] == ["Jobs.Admin"]
    assert "groups" not in claims


def test_users_are_found_by_name_or_sign_in_name() -> None:
    assert dev_user("Alice@devstack.example") is DEV_USERS["alice"]
    with pytest.raises(UnknownUser, match="alice"):
        dev_user("mallory")


# --- the signing key ----------------------------------------------------------------------------------------------


def test_the_signing_key_is_readable_by_its_owner_only(issuer: IdentityIssuer, state_dir: Path) -> None:
    mode = stat.S_IMODE((state_dir / "signing-key.pem").stat().st_mode)

    assert mode == 0o600


def test_a_restarted_issuer_keeps_its_key_and_validates_earlier_tokens(
    issuer: IdentityIssuer, state_dir: Path, dev_tls: TLSFiles
) -> None:
    earlier = issuer.token("alice")

    with IdentityIssuer(state_dir, dev_tls) as restarted:
        assert restarted.kid == issuer.kid
        keys = jwt.PyJWKClient(restarted.jwks_uri, ssl_context=ssl.create_default_context(cafile=str(dev_tls.ca)))
        claims = jwt.decode(
            earlier,
            keys.get_signing_key_from_jwt(earlier).key,
            algorithms=["RS256"],
            audience=API_CLIENT_ID,
            options={"verify_iss": False},  # the restarted issuer listens on another port
        )
    assert claims["oid"] == DEV_USERS["alice"].object_id


def test_an_issuer_on_a_fresh_folder_has_another_key(issuer: IdentityIssuer, tmp_path: Path, dev_tls: TLSFiles) -> None:
    assert IdentityIssuer(tmp_path, dev_tls).kid != issuer.kid


# --- the authorization code flow with PKCE (the dashboard's MSAL.js) ---------------------------------------------

REDIRECT = "http://127.0.0.1:7071/api/ui/redirect.html"
VERIFIER = "a-code-verifier-of-forty-three-characters-or-more-0123456789"
DASHBOARD_SCOPE = f"api://{API_CLIENT_ID}/access_as_user openid profile offline_access"


def _authorize(session: requests.Session, issuer: IdentityIssuer, **fields: str) -> dict[str, str]:
    """An authorize request as MSAL.js sends it, answered without following the redirect: the redirect's fields."""
    query = {
        "client_id": API_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": DASHBOARD_SCOPE,
        "state": "the-state",
        "nonce": "the-nonce",
        "response_mode": "fragment",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "client_info": "1",
        **fields,
    }
    answer = session.get(
        f"{issuer.url}/{TENANT_ID}/oauth2/v2.0/authorize", params=query, timeout=10, allow_redirects=False
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "#")
    return {name: values[0] for name, values in parse_qs(location.split("#", 1)[1]).items()}


def _redeem(session: requests.Session, issuer: IdentityIssuer, code: str, **fields: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": API_CLIENT_ID,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "scope": DASHBOARD_SCOPE,
        **fields,
    }
    return session.post(issuer.token_endpoint, data=form, headers={"Origin": "http://127.0.0.1:7071"}, timeout=10)


def test_the_authorize_page_lists_the_development_users(issuer: IdentityIssuer, session: requests.Session) -> None:
    query = {
        "client_id": API_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": DASHBOARD_SCOPE,
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "state": "s",
    }
    answer = session.get(f"{issuer.url}/{TENANT_ID}/oauth2/v2.0/authorize", params=query, timeout=10)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "script-src" not in answer.headers["content-security-policy"]
    for user in DEV_USERS.values():
        assert user.username in answer.text
    assert 'name="code_challenge"' in answer.text  # the request's fields ride along in the form


def test_a_code_redeemed_with_its_verifier_gives_the_users_tokens_and_cannot_be_redeemed_again(
    issuer: IdentityIssuer, session: requests.Session, keys: jwt.PyJWKClient
) -> None:
    fields = _authorize(session, issuer, login_hint="alice@devstack.example")
    assert fields["state"] == "the-state"
    assert json.loads(base64.urlsafe_b64decode(fields["client_info"] + "==")) == {
        "uid": dev_user("alice").object_id,
        "utid": TENANT_ID,
    }

    answer = _redeem(session, issuer, fields["code"])

    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "*"  # the browser redeems across origins
    body = answer.json()
    claims = _validate(body["access_token"], keys, issuer)
    assert claims["oid"] == dev_user("alice").object_id
    assert claims["azp"] == API_CLIENT_ID
    identity = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert identity["nonce"] == "the-nonce"
    assert identity["aud"] == API_CLIENT_ID
    assert body["refresh_token"]
    assert body["client_info"] == fields["client_info"]
    again = _redeem(session, issuer, fields["code"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "AADSTS70008" in again.json()["error_description"]


def test_a_code_redeemed_with_the_wrong_verifier_client_or_redirect_is_refused(
    issuer: IdentityIssuer, session: requests.Session
) -> None:
    for wrong, code in (
        ({"code_verifier": "another-verifier-of-forty-three-characters-0123456789"}, 501481),
        ({"client_id": CLI_CLIENT_ID}, 70000),
        ({"redirect_uri": "http://127.0.0.1:7071/elsewhere"}, 50148),
        ({"code_verifier": ""}, 9002325),
    ):
        fields = _authorize(session, issuer, login_hint="bob")
        answer = _redeem(session, issuer, fields["code"], **wrong)
        assert answer.status_code == 400, wrong
        assert f"AADSTS{code}" in answer.json()["error_description"], wrong


def test_a_refresh_token_gives_new_tokens_once(issuer: IdentityIssuer, session: requests.Session) -> None:
    fields = _authorize(session, issuer, login_hint="carol")
    refresh = _redeem(session, issuer, fields["code"]).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "client_id": API_CLIENT_ID, "refresh_token": refresh}

    first = session.post(issuer.token_endpoint, data=form, timeout=10)
    second = session.post(issuer.token_endpoint, data=form, timeout=10)

    assert first.status_code == 200
    claims = jwt.decode(first.json()["access_token"], options={"verify_signature": False})
    assert claims["oid"] == dev_user("carol").object_id
    assert first.json()["refresh_token"] != refresh  # rotated, as Entra rotates a SPA's
    assert second.status_code == 400
    assert "AADSTS700084" in second.json()["error_description"]


def test_authorize_refuses_a_redirect_off_this_machine_without_redirecting(
    issuer: IdentityIssuer, session: requests.Session
) -> None:
    query = {
        "client_id": API_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": "https://attacker.example/cb",
        "scope": DASHBOARD_SCOPE,
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "login_hint": "alice",
    }
    answer = session.get(
        f"{issuer.url}/{TENANT_ID}/oauth2/v2.0/authorize", params=query, timeout=10, allow_redirects=False
    )

    assert answer.status_code == 400
    assert "AADSTS50011" in answer.json()["error_description"]
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"prompt": "none"}, "login_required"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "https://graph.microsoft.com/User.Read openid"}, "invalid_resource"),
        ({"login_hint": "mallory"}, "invalid_grant"),
    ],
)
def test_authorize_sends_a_refusal_to_the_redirect_uri(
    issuer: IdentityIssuer, session: requests.Session, fields: dict[str, str], error: str
) -> None:
    answer = _authorize(session, issuer, **fields)

    assert answer["error"] == error
    assert answer["error_description"].startswith("AADSTS")
    assert answer["state"] == "the-state"
    assert "code" not in answer

"""The dashboard's Entra ID sign-in: what ``config.json`` tells MSAL.js, the pages' Content Security Policy, and
the bundled MSAL.js being the pinned npm package's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.entrypoints.http_ui import VENDORED, asset, sign_in_config
from dispatcher.settings import DispatcherSettings

ROOT = Path(__file__).resolve().parents[2]
TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "99999999-8888-7777-6666-555555555555"


def _settings(**values: object) -> DispatcherSettings:
    return DispatcherSettings.model_validate({"credential": "azure", **values})


def test_without_an_audience_the_page_offers_keys_only() -> None:
    response = asset("config.json", _settings())

    assert json.loads(response.body) == {"entra": None, "keys": True}
    assert "connect-src 'self';" in asset("index.html", _settings()).headers["Content-Security-Policy"]


def test_in_azure_the_page_signs_in_at_the_clouds_login_host_as_the_apis_registration() -> None:
    settings = _settings(auth_tenant_id=TENANT, auth_audience=AUDIENCE)

    config = sign_in_config(settings)

    assert config == {
        "clientId": AUDIENCE,
        "authority": f"https://login.microsoftonline.com/{TENANT}",
        "knownAuthorities": [],  # MSAL's own instance discovery knows Microsoft's hosts
        "scopes": [f"api://{AUDIENCE}/access_as_user"],
    }
    policy = asset("job.html", settings).headers["Content-Security-Policy"]
    assert "connect-src 'self' https://login.microsoftonline.com;" in policy
    assert "script-src 'self';" in policy


def test_the_scope_follows_its_setting() -> None:
    settings = _settings(
        auth_tenant_id=TENANT, auth_audience=AUDIENCE, auth_scope=f"api://{TENANT}/aci-dispatcher-x/access_as_user"
    )

    config = sign_in_config(settings)

    assert config is not None
    assert config["scopes"] == [f"api://{TENANT}/aci-dispatcher-x/access_as_user"]


def test_devstacks_issuer_is_a_known_authority_on_loopback() -> None:
    settings = DispatcherSettings.model_validate(
        {
            "credential": "devstack",
            "auth_tenant_id": TENANT,
            "auth_audience": AUDIENCE,
            "auth_authority": f"https://127.0.0.1:8443/{TENANT}/v2.0",
        }
    )

    config = sign_in_config(settings)

    assert config is not None
    assert config["authority"] == f"https://127.0.0.1:8443/{TENANT}"
    assert config["knownAuthorities"] == ["127.0.0.1:8443"]
    assert "connect-src 'self' https://127.0.0.1:8443;" in asset("", settings).headers["Content-Security-Policy"]


def test_an_authority_off_the_clouds_login_host_is_a_503_and_the_pages_talk_to_their_origin_only() -> None:
    settings = _settings(auth_tenant_id=TENANT, auth_audience=AUDIENCE, auth_authority="https://login.evil.example/t")

    response = asset("config.json", settings)

    assert response.status == 503
    assert "DISPATCHER_AUTH_AUTHORITY" in json.loads(response.body)["detail"]
    assert "evil" not in asset("index.html", settings).headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", VENDORED)
def test_the_bundled_msal_is_the_pinned_packages(name: str) -> None:
    """The copy the app serves (it is deployed without node_modules) is byte for byte the npm package pinned in
    package-lock.json, which ``make setup`` installs."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/@azure/msal-browser"]["version"]
    package = ROOT / "node_modules" / "@azure" / "msal-browser"
    assert json.loads((package / "package.json").read_text())["version"] == pinned
    shipped = {"msal-browser.min.js": "lib/msal-browser.min.js"}.get(name, f"lib/redirect-bridge/{name}")
    vendored = ROOT / "dispatcher" / "entrypoints" / "ui" / "vendor" / name
    assert vendored.read_bytes() == (package / shipped).read_bytes()
    assert vendored.read_bytes().startswith(f"/*! @azure/msal-browser v{pinned} ".encode())

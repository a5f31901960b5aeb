"""The composition root refuses to send a credential where it does not belong: a corpus of tricky endpoints, each
proven by a listener on this machine that must receive nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.data.tables import TableClient
from azure.keyvault.secrets import SecretClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.storage.blob import BlobServiceClient
from azure.storage.fileshare import ShareServiceClient

from dispatcher import bootstrap
from dispatcher.bootstrap import build_services, check_endpoints
from dispatcher.domain.errors import UnsafeConfiguration
from dispatcher.endpoints import api_url_problem, connection_string_endpoints
from dispatcher.settings import DispatcherSettings

AZURE = {
    "credential": "azure",
    "storage_account": "acct",
    "arm_endpoint": "https://management.azure.com",
    "keyvault_url": "https://kv-disp.vault.azure.net",
    "job_secrets_vault_url": "https://kv-jobs.vault.azure.net",
    "table_endpoint": "https://acct.table.core.windows.net",
    "blob_endpoint": "https://acct.blob.core.windows.net",
    "file_endpoint": "https://acct.file.core.windows.net",
    "DISPATCHER_SERVICEBUS_NAMESPACE": "ns-jobs.servicebus.windows.net",
}


LOCAL = "https://127.0.0.1:9443"


class Listener:
    """A TCP listener on loopback that counts the connections it is offered."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


class RealToken:
    """Stands in for the managed identity: a token that must never leave Azure."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("real-managed-identity-token", 2_000_000_000)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("real-managed-identity-token", 2_000_000_000)


def tricky(port: int, real: str) -> list[str]:
    """URLs whose host is read two ways, or that reach this machine dressed as ``real``."""
    local = f"127.0.0.1:{port}"
    return [
        f"https://{local}\\@{real}",
        f"https://{local}@{real}",
        f"https://{real}@{local}",
        f"https://{local}%2F@{real}",
        f"https://{local}%40{real}",
        f"https://{local}#@{real}",
        f"https://{local}?@{real}",
        f"https://{local}/{real}",
        f"https://{local}\t@{real}",
        f"https://[::1]:{port}\\@{real}",
        f"https://{real}.{local}",
        f"https://{local}",
    ]


def use(settings: DispatcherSettings) -> None:
    """Build the services and read a record: what would send the token (nothing must get this far)."""
    build_services(settings).records.get("x")


@pytest.mark.parametrize(
    "setting",
    ["arm_endpoint", "table_endpoint", "blob_endpoint", "file_endpoint", "keyvault_url", "job_secrets_vault_url"],
)
def test_no_tricky_endpoint_gets_the_real_credential(
    setting: str, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "DefaultAzureCredential", lambda **_: RealToken())
    real = AZURE[setting].removeprefix("https://")
    for url in tricky(listener.port, real):
        settings = DispatcherSettings(**{**AZURE, setting: url})  # type: ignore[arg-type]
        with pytest.raises(UnsafeConfiguration):
            use(settings)
    assert listener.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.cloudapp.azure.com",
        "https://x.inference.ml.azure.com",
        "https://management.azure.com.evil.net",
        "https://management.azure.com:8443",
        "https://management.azure.com/path",
        "http://management.azure.com",
        "https://MANAGEMENT.azure.com.",
        "https://management.usgovcloudapi.net",
    ],
)
def test_other_customers_hosts_lookalikes_ports_and_paths_are_refused_for_arm(url: str) -> None:
    with pytest.raises(UnsafeConfiguration, match="DISPATCHER_ARM_ENDPOINT"):
        check_endpoints(DispatcherSettings(**{**AZURE, "arm_endpoint": url}))  # type: ignore[arg-type]


def test_storage_endpoints_must_be_the_configured_accounts() -> None:
    with pytest.raises(UnsafeConfiguration, match="DISPATCHER_TABLE_ENDPOINT"):
        check_endpoints(DispatcherSettings(**{**AZURE, "table_endpoint": "https://other.table.core.windows.net"}))  # type: ignore[arg-type]
    check_endpoints(
        DispatcherSettings(
            **{  # type: ignore[arg-type]
                **AZURE,
                "data_account": "records",
                "table_endpoint": "https://records.table.core.windows.net",
                "blob_endpoint": "https://records.blob.core.windows.net",
            }
        )
    )


def test_exact_azure_endpoints_pass_in_every_cloud() -> None:
    settings = DispatcherSettings(**AZURE)  # type: ignore[arg-type]
    assert settings.servicebus_namespace
    check_endpoints(settings)
    with pytest.raises(UnsafeConfiguration, match="fullyQualifiedNamespace"):
        check_endpoints(settings.model_copy(update={"servicebus_namespace": "evil.servicebus.windows.net.example"}))
    check_endpoints(
        DispatcherSettings(
            **{  # type: ignore[arg-type]
                **AZURE,
                "cloud": "AzureChinaCloud",
                "arm_endpoint": "https://management.chinacloudapi.cn",
                "keyvault_url": "https://kv-disp.vault.azure.cn",
                "job_secrets_vault_url": "https://kv-jobs.vault.azure.cn",
                "table_endpoint": "https://acct.table.core.chinacloudapi.cn",
                "blob_endpoint": "https://acct.blob.core.chinacloudapi.cn",
                "file_endpoint": "https://acct.file.core.chinacloudapi.cn",
                "DISPATCHER_SERVICEBUS_NAMESPACE": "ns-jobs.servicebus.chinacloudapi.cn",
            }
        )
    )


def test_connection_strings_are_checked_and_refused_with_a_real_credential(listener: Listener) -> None:
    remote = f"BlobEndpoint=http://127.0.0.1:{listener.port}\\@acct.blob.core.windows.net;AccountName=a;AccountKey=k"
    with pytest.raises(UnsafeConfiguration, match="devstack only"):
        check_endpoints(DispatcherSettings(**{**AZURE, "storage_connection_string": remote}))  # type: ignore[arg-type]
    with pytest.raises(UnsafeConfiguration, match="STORAGE_CONNECTION_STRING BlobEndpoint"):
        check_endpoints(DispatcherSettings(credential="devstack", arm_endpoint=LOCAL, storage_connection_string=remote))
    servicebus = "Endpoint=sb://10.0.0.5:5671;SharedAccessKeyName=k;SharedAccessKey=v"
    with pytest.raises(UnsafeConfiguration, match="ServiceBusConnection Endpoint"):
        check_endpoints(DispatcherSettings(credential="devstack", arm_endpoint=LOCAL, ServiceBusConnection=servicebus))
    assert listener.connections == 0
    assert connection_string_endpoints("AccountName=a;EndpointSuffix=core.windows.net")["TableEndpoint"] == (
        "https://a.table.core.windows.net"
    )


def test_the_devstack_token_stays_on_loopback() -> None:
    check_endpoints(
        DispatcherSettings(
            credential="devstack",
            arm_endpoint="https://127.0.0.1:9443",
            blob_endpoint="http://127.0.0.1:10000/devstoreaccount1",
        )
    )
    with pytest.raises(UnsafeConfiguration, match="loopback"):
        check_endpoints(DispatcherSettings(credential="devstack"))
    with pytest.raises(UnsafeConfiguration):
        check_endpoints(DispatcherSettings(credential="devstack", arm_endpoint="https://10.1.1.1\\@127.0.0.1"))


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://REMOTE:8080\\@127.0.0.1/api", True),
        ("http://127.0.0.1:7071@evil.example/api", True),
        ("http://evil.example/api", True),
        ("http://127.0.0.1:7071/api", False),
        ("http://[::1]:7071/api", False),
        ("https://app.azurewebsites.net/api", False),
    ],
)
def test_the_cli_sends_its_key_over_http_to_loopback_only(url: str, refused: bool) -> None:
    assert (api_url_problem(url, key=True) is not None) is refused


TELEMETRY = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={ingest};LiveEndpoint={live}"


def test_telemetry_with_the_apps_token_goes_to_azures_monitor_endpoints_only() -> None:
    azure = TELEMETRY.format(
        ingest="https://westeurope-5.in.applicationinsights.azure.com/",
        live="https://westeurope.livediagnostics.monitor.azure.com/",
    )
    check_endpoints(DispatcherSettings(**{**AZURE, "APPLICATIONINSIGHTS_CONNECTION_STRING": azure}))  # type: ignore[arg-type]
    for ingest in ("https://collector.example.com/", "https://in.applicationinsights.azure.com.example.com/"):
        elsewhere = TELEMETRY.format(ingest=ingest, live="https://westeurope.livediagnostics.monitor.azure.com/")
        with pytest.raises(UnsafeConfiguration, match="APPLICATIONINSIGHTS_CONNECTION_STRING IngestionEndpoint"):
            check_endpoints(DispatcherSettings(**{**AZURE, "APPLICATIONINSIGHTS_CONNECTION_STRING": elsewhere}))  # type: ignore[arg-type]
    gov = TELEMETRY.format(
        ingest="https://usgovvirginia-1.in.applicationinsights.us/", live="https://x.monitor.azure.us/"
    )
    with pytest.raises(UnsafeConfiguration, match="IngestionEndpoint"):  # another cloud's
        check_endpoints(DispatcherSettings(**{**AZURE, "APPLICATIONINSIGHTS_CONNECTION_STRING": gov}))  # type: ignore[arg-type]
    local = TELEMETRY.format(ingest="http://127.0.0.1:4318/", live="http://127.0.0.1:4318/")
    check_endpoints(
        DispatcherSettings(credential="devstack", arm_endpoint=LOCAL, APPLICATIONINSIGHTS_CONNECTION_STRING=local)
    )
    with pytest.raises(UnsafeConfiguration, match="loopback"):
        check_endpoints(
            DispatcherSettings(credential="devstack", arm_endpoint=LOCAL, APPLICATIONINSIGHTS_CONNECTION_STRING=azure)
        )


# --- requests and the environment ---------------------------------------------------------------------------------

PROXY_AND_BUNDLE = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "NETRC",
    *bootstrap.CA_BUNDLES,
)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_AND_BUNDLE:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_proxy_or_bundle_in_the_environment_requests_does_not_scan_it_per_call(
    bare_environment: pytest.MonkeyPatch,
) -> None:
    options = bootstrap.http_options(DispatcherSettings.model_validate(AZURE))

    assert options == {"connection_verify": True, "use_env_settings": False}


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "NETRC"])
def test_a_proxy_or_netrc_in_the_environment_is_still_consulted_per_request(
    bare_environment: pytest.MonkeyPatch, name: str
) -> None:
    bare_environment.setenv(name, "http://proxy.example:3128" if "PROXY" in name.upper() else "/etc/netrc")

    assert bootstrap.http_options(DispatcherSettings.model_validate(AZURE))["use_env_settings"] is True


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"REQUESTS_CA_BUNDLE": "/a.pem", "CURL_CA_BUNDLE": "/b.pem"}, "/a.pem"),
        ({"CURL_CA_BUNDLE": "/b.pem"}, "/b.pem"),
        ({"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/b.pem"}, "/b.pem"),
    ],
)
def test_a_ca_bundle_in_the_environment_is_read_once_as_requests_would_read_it(
    bare_environment: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        bare_environment.setenv(name, value)

    options = bootstrap.http_options(DispatcherSettings.model_validate(AZURE))
    named = bootstrap.http_options(DispatcherSettings.model_validate({**AZURE, "tls_ca_bundle": "/mine.pem"}))

    assert options == {"connection_verify": expected, "use_env_settings": False}
    assert named["connection_verify"] == "/mine.pem"  # the setting wins, as an explicit verify does in requests


def test_the_sdks_hand_the_option_to_their_transports(bare_environment: pytest.MonkeyPatch) -> None:
    """azure-core turns ``use_env_settings`` into the requests session's ``trust_env``: each SDK the dispatcher
    uses passes it through to its transport."""
    options = bootstrap.http_options(DispatcherSettings.model_validate(AZURE))
    connection = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YQ==;TableEndpoint=http://127.0.0.1:1/a"
    credential = _Token()
    transports = [
        TableClient.from_connection_string(connection, "jobs", **options)._client._client._pipeline._transport,
        BlobServiceClient(AZURE["blob_endpoint"], credential=credential, **options)._pipeline._transport,
        ShareServiceClient(
            AZURE["file_endpoint"], credential=credential, token_intent="backup", **options
        )._pipeline._transport,
        ContainerInstanceManagementClient(credential, "sub", **options)._client._pipeline._transport,
        SecretClient(AZURE["keyvault_url"], credential, **options)._client._client._pipeline._transport,
    ]

    assert [t._use_env_settings for t in transports] == [False] * len(transports)


class _Token:
    def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        return AccessToken("token", 2**31)

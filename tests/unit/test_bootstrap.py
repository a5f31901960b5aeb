"""The composition root refuses to send a credential where it does not belong."""

import pytest

from dispatcher.bootstrap import check_endpoints
from dispatcher.domain.errors import UnsafeConfiguration
from dispatcher.settings import DispatcherSettings


def test_a_real_credential_is_never_sent_to_a_non_azure_endpoint() -> None:
    with pytest.raises(UnsafeConfiguration, match="DISPATCHER_ARM_ENDPOINT"):
        check_endpoints(DispatcherSettings(credential="azure", arm_endpoint="https://127.0.0.1:8443"))


def test_a_real_credential_needs_https() -> None:
    with pytest.raises(UnsafeConfiguration, match="https"):
        check_endpoints(DispatcherSettings(credential="azure", keyvault_url="http://kv.vault.azure.net"))


def test_lookalike_hosts_are_not_azure() -> None:
    with pytest.raises(UnsafeConfiguration):
        check_endpoints(DispatcherSettings(credential="azure", table_endpoint="https://evilwindows.net"))


def test_azure_endpoints_pass_with_a_real_credential() -> None:
    check_endpoints(
        DispatcherSettings(
            credential="azure",
            keyvault_url="https://kv1.vault.azure.net",
            table_endpoint="https://acct.table.core.windows.net",
            servicebus_namespace="ns.servicebus.windows.net",
        )
    )


def test_the_devstack_token_stays_on_loopback() -> None:
    check_endpoints(DispatcherSettings(credential="devstack", arm_endpoint="https://127.0.0.1:9443"))
    with pytest.raises(UnsafeConfiguration, match="loopback"):
        check_endpoints(DispatcherSettings(credential="devstack"))

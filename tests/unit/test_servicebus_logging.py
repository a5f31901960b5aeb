"""The Service Bus emulator keeps proton's errors, except a client's socket closing first at teardown."""

from __future__ import annotations

import logging

import pytest

import devstack.servicebus.emulator  # noqa: F401 - installs the filter on proton's logger


def test_a_client_gone_at_teardown_is_not_an_error_but_other_proton_errors_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proton = logging.getLogger("proton")
    with caplog.at_level(logging.ERROR, logger="proton"):
        proton.error("Couldn't send: %r", BrokenPipeError(32, "Broken pipe"))
        proton.error("Couldn't recv: %r", ConnectionResetError(104, "Connection reset by peer"))
        proton.error("Couldn't connect: refused")
    assert [r.getMessage() for r in caplog.records] == ["Couldn't connect: refused"]

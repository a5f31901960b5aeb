"""The singleton listener lock over Azurite's real blob leases."""

from __future__ import annotations

import uuid

import pytest

from devstack.azurite import Azurite
from devstack.host.singleton import ListenerLock


def test_one_instance_holds_the_lock_and_another_takes_it_once_released(azurite: Azurite) -> None:
    host = f"host-{uuid.uuid4().hex[:8]}"
    first, second = (ListenerLock(azurite.connection_string, host, "reconcile", period=15) for _ in range(2))
    try:
        assert first.acquire()
        assert not second.acquire()  # the lease is held: 409, not an error
        assert first.renew()
        first.release()
        assert not first.renew()  # released: nothing to renew
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.close()
        second.close()


def test_a_lease_outside_azures_bounds_is_refused(azurite: Azurite) -> None:
    with pytest.raises(ValueError, match="15 to 60"):
        ListenerLock(azurite.connection_string, "h", "reconcile", period=5)

"""Shared fixtures. Each emulator's fixtures live in tests/fixtures/ and start it on random loopback ports."""

from hypothesis import settings

# Shared 2-core machines: no per-example deadline, so property tests never fail on timing.
settings.register_profile("default", deadline=None)
settings.load_profile("default")

pytest_plugins = [
    "tests.fixtures.tls",
    "tests.fixtures.aci",
    "tests.fixtures.servicebus",
    "tests.fixtures.files",
    "tests.fixtures.keyvault",
    "tests.fixtures.azurite",
    "tests.fixtures.host",
    "tests.fixtures.stack",
]

"""Shared fixtures. Each emulator's fixtures live in tests/fixtures/ and start it on random loopback ports."""

pytest_plugins = [
    "tests.fixtures.tls",
]

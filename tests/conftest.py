"""Shared fixtures. Each emulator's fixtures live in tests/fixtures/ and start it on random loopback ports."""

import os

from hypothesis import settings

# Shared 2-core machines: no per-example deadline, so property tests never fail on timing. ``make test-fast`` picks
# the small profile (HYPOTHESIS_PROFILE=fast) for the inner loop; ``make test`` runs the full one.
settings.register_profile("default", deadline=None, max_examples=100)
settings.register_profile("fast", deadline=None, max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

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

"""Devstack emulator of Azure Container Instances (ARM REST, api-version 2023-05-01).

In run mode each container runs its exec-form ``command`` as a local process in a bubblewrap sandbox; the
image is not pulled, so a job runs with the host's own tools. In simulate mode nothing runs and states
follow configurable rules, cheaply enough for thousands of groups.
"""

from devstack.aci.config import (
    AciConfig,
    QuotaLimits,
    RegionFaults,
    SimulatedContainer,
    SimulatedOutcome,
    SimulationRules,
    ThrottleLimits,
)
from devstack.aci.emulator import AciEmulator
from devstack.aci.faults import FaultInjector

__all__ = [
    "AciConfig",
    "AciEmulator",
    "FaultInjector",
    "QuotaLimits",
    "RegionFaults",
    "SimulatedContainer",
    "SimulatedOutcome",
    "SimulationRules",
    "ThrottleLimits",
]

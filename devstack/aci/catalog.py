"""The provider's fixed answers: the operations it lists and a region's capabilities, shaped as the 2023-05-01
examples in azure-rest-api-specs show them (``OperationsList.json``, ``CapabilitiesList.json``)."""

from __future__ import annotations

from typing import Any

from devstack.aci.config import normalise_region

_DISPLAY = {"provider": "Microsoft Container Instance", "resource": "Container Group"}
_ACTIONS = {
    "containerGroups/read": ("Get Container Groups", "Get all container groups."),
    "containerGroups/write": ("Create or Update Container Groups", "Create or update a specific container group."),
    "containerGroups/delete": ("Delete Container Groups", "Delete the specific container group."),
    "containerGroups/restart/action": ("Restart Container Groups", "Restarts a specific container group."),
    "containerGroups/stop/action": ("Stop Container Groups", "Stops a specific container group."),
    "containerGroups/start/action": ("Start Container Groups", "Starts a specific container group."),
    "containerGroups/containers/logs/read": ("Get container logs", "Get the logs for a specific container."),
    "locations/usages/read": ("Get Usage", "Get the usage for a specific location."),
}

OPERATIONS: dict[str, Any] = {
    "value": [
        {
            "name": f"Microsoft.ContainerInstance/{action}",
            "display": {**_DISPLAY, "operation": operation, "description": description},
            "origin": "User",
        }
        for action, (operation, description) in _ACTIONS.items()
    ]
}


def capabilities(location: str) -> dict[str, Any]:
    """What a Linux container group may ask for in ``location``: 4 vCPU and 16 GB without a quota request."""
    region = normalise_region(location)
    return {
        "value": [
            {
                "resourceType": "containerGroups",
                "osType": "Linux",
                "location": region,
                "ipAddressType": address,
                "gpu": "None",
                "capabilities": {"maxMemoryInGB": 16, "maxCpu": 4, "maxGpuCount": 0},
            }
            for address in ("Public", "Private")
        ]
    }

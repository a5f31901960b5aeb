"""ARM errors: the ``{"error": {"code", "message"}}`` body and its HTTP status."""

from __future__ import annotations


class ArmError(Exception):
    """An error answered to the client with ``status`` and the ARM error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON body ARM sends."""
        return {"error": {"code": self.code, "message": self.message}}


def not_found(resource_group: str, name: str) -> ArmError:
    """The 404 ARM answers for a container group that does not exist."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group "
        f"'{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )

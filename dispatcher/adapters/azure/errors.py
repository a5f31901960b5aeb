"""azure-core's exceptions, translated into the dispatcher's :class:`~dispatcher.domain.errors.CloudError` once.

Every adapter over an azure-core SDK (ARM, Tables, Blob, Files, Key Vault) calls the SDK inside
:func:`translated`; what escapes is a ``CloudError`` that names the action, the service's error code and the
HTTP status, never a request or response body. Cases an adapter answers itself (a 404 that means "absent", a
412 that means "changed") are caught before, by the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError

from dispatcher.domain.errors import CloudError

TRANSIENT_CODES = frozenset({"ContainerGroupQuotaReached", "ServerBusy", "OperationTimedOut", "InternalError"})


def error_code(exc: HttpResponseError) -> str | None:
    """The service's error code: ARM's ``error.code``, or storage's ``x-ms-error-code``."""
    if exc.error is not None and exc.error.code:
        return str(exc.error.code)
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    response: Any = exc.response
    header = response.headers.get("x-ms-error-code") if response is not None else None
    return str(header) if header else None


def cloud_error(exc: AzureError, action: str) -> CloudError:
    """Our error for an SDK failure that outlasted the SDK's retry budget."""
    if isinstance(exc, HttpResponseError):
        code = error_code(exc)
        status = exc.status_code
        message = exc.error.message if exc.error is not None and exc.error.message else (exc.reason or "error")
        transient = status is None or status in (408, 429) or status >= 500 or code in TRANSIENT_CODES
        first_line = str(message).splitlines()[0] if message else "error"
        return CloudError(
            f"{action}: {code or status}: {first_line[:300]}", code=code, status=status, transient=transient
        )
    return CloudError(f"{action}: {type(exc).__name__}: {str(exc)[:300]}", transient=True)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run SDK calls; an ``AzureError`` leaves as a :class:`CloudError` for ``action``, its cause dropped."""
    try:
        yield
    except AzureError as exc:
        raise cloud_error(exc, action) from None

"""The error the Files emulator raises and the XML body the service answers it with."""

from __future__ import annotations

import datetime as dt
import uuid
from xml.sax.saxutils import escape


class StorageError(Exception):
    """A failure the service reports with an HTTP status, an ``x-ms-error-code`` and an XML ``<Error>`` body."""

    def __init__(self, status: int, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        """Extra explanation, sent as ``AuthenticationErrorDetail`` for authentication failures."""


def error_body(error: StorageError, request_id: str | None = None) -> bytes:
    """The service's XML error document: ``Code``, ``Message`` (with request id and time), optional detail."""
    request_id = request_id or str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    message = f"{error.message}\nRequestId:{request_id}\nTime:{now}"
    detail = error.detail
    extra = f"<AuthenticationErrorDetail>{escape(detail)}</AuthenticationErrorDetail>" if detail else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(error.code)}</Code><Message>{escape(message)}</Message>{extra}</Error>"
    ).encode()

"""The Azure Files REST surface, as a Starlette app over a :class:`~devstack.files.store.ShareStore`.

URLs are path style, like Azurite's: ``/<account>/<share>/<dir>/<file>``. Every request must carry
a valid SharedKey ``Authorization`` header for the account it names. HTTP/1.1 header names arrive
lower-cased, so metadata keys come back lower-cased.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devstack.files.errors import StorageError, error_body
from devstack.files.sharedkey import AuthenticationFailed, SignedRequest, verify
from devstack.files.store import ContentHeaders, EntryInfo, ShareInfo, ShareStore

MAX_RANGE_BYTES = 4 * 1024 * 1024
"""The largest range one Put Range request may write."""

DEFAULT_VERSION = "2025-05-05"
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_METADATA_PREFIX = "x-ms-meta-"


def _rfc1123(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def _iso7(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


@dataclass(frozen=True)
class _Call:
    """One authenticated request, decoded."""

    method: str
    account: str
    endpoint: str
    """The account's URL, ``http://host:port/account/``."""
    share: str | None
    parts: list[str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


def _metadata(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name[len(_METADATA_PREFIX) :]: value for name, value in headers.items() if name.startswith(_METADATA_PREFIX)
    }


def _metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    return {f"{_METADATA_PREFIX}{name}": value for name, value in metadata.items()}


def _smb_headers(info: EntryInfo) -> dict[str, str]:
    return {
        "ETag": info.etag,
        "Last-Modified": _rfc1123(info.last_modified),
        "x-ms-file-attributes": "Directory" if info.is_directory else "Archive",
        "x-ms-file-creation-time": _iso7(info.creation_time),
        "x-ms-file-last-write-time": _iso7(info.last_write_time),
        "x-ms-file-change-time": _iso7(info.change_time),
        "x-ms-file-id": info.file_id,
        "x-ms-file-parent-id": info.parent_id,
    }


def _file_headers(info: EntryInfo) -> dict[str, str]:
    headers = _smb_headers(info)
    headers.update(_metadata_headers(info.metadata))
    headers.update(
        {
            "Content-Type": info.headers.content_type,
            "x-ms-type": "File",
            "x-ms-server-encrypted": "false",
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
        }
    )
    optional = {
        "Content-Encoding": info.headers.content_encoding,
        "Content-Language": info.headers.content_language,
        "Cache-Control": info.headers.cache_control,
        "Content-Disposition": info.headers.content_disposition,
        "Content-MD5": info.headers.content_md5,
    }
    headers.update({name: value for name, value in optional.items() if value})
    return headers


def _share_headers(info: ShareInfo) -> dict[str, str]:
    headers = {"ETag": info.etag, "Last-Modified": _rfc1123(info.last_modified)}
    headers.update(_metadata_headers(info.metadata))
    return headers


def _parse_range(value: str | None) -> tuple[int, int | None] | None:
    if not value:
        return None
    match = _RANGE.match(value.strip())
    if not match:
        raise StorageError(400, "InvalidHeaderValue", "The value for the range header is not in the correct format.")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else None
    if end is not None and end < start:
        raise StorageError(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
    return start, end


def _xml(element: ET.Element) -> bytes:
    document: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>' + document


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attributes)
    if text is not None:
        child.text = text
    return child


def _name_element(parent: ET.Element, name: str) -> None:
    # Names XML 1.0 cannot carry are sent percent-encoded, flagged as the service does.
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff" for c in name):
        _sub(parent, "Name", quote(name), Encoded="true")
    else:
        _sub(parent, "Name", name)


class FilesApi:
    """Routes each REST operation to the store and renders the service's responses."""

    def __init__(self, store: ShareStore, accounts: Mapping[str, str]) -> None:
        self.store = store
        self.accounts = dict(accounts)

    def app(self) -> Starlette:
        """A Starlette app serving every path."""
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "HEAD", "PUT", "DELETE"])])

    async def handle(self, request: Request) -> Response:
        """Authenticate, dispatch, and turn :class:`StorageError` into the service's error response."""
        request_id = str(uuid.uuid4())
        headers = {name.lower(): value for name, value in request.headers.items()}
        common = {
            "x-ms-request-id": request_id,
            "x-ms-version": headers.get("x-ms-version", DEFAULT_VERSION),
        }
        if "x-ms-client-request-id" in headers:
            common["x-ms-client-request-id"] = headers["x-ms-client-request-id"]
        try:
            call = await self._authenticated_call(request, headers)
            status, response_headers, body = self._dispatch(call)
        except StorageError as error:
            body = b"" if request.method == "HEAD" else error_body(error, request_id)
            error_headers = {**common, "x-ms-error-code": error.code}
            if body:
                error_headers["Content-Type"] = "application/xml"
            return Response(body, status_code=error.status, headers=error_headers)
        response_headers = {**common, **response_headers}
        if request.method == "HEAD":
            return Response(b"", status_code=status, headers=response_headers)
        return Response(body, status_code=status, headers=response_headers)

    async def _authenticated_call(self, request: Request, headers: dict[str, str]) -> _Call:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        raw_path_text = raw_path.decode("latin-1").split("?", 1)[0]
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            account = verify(
                SignedRequest(method=request.method, raw_path=raw_path_text, raw_query=raw_query, headers=headers),
                self.accounts,
            )
        except AuthenticationFailed as failure:
            raise StorageError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is "
                "formed correctly including the signature.",
                detail=str(failure),
            ) from failure
        # Clients percent-encode the slashes inside a directory path (%2F): decode, then split.
        segments = unquote(raw_path_text).split("/")[1:]
        while segments and segments[-1] == "":
            segments.pop()
        if not segments or segments[0] != account:
            raise StorageError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request.",
                detail=f"The signing account {account!r} is not the account in the URL.",
            )
        body = await request.body() if request.method == "PUT" else b""
        return _Call(
            method=request.method,
            account=account,
            endpoint=f"{str(request.base_url).rstrip('/')}/{account}/",
            share=segments[1] if len(segments) > 1 else None,
            parts=segments[2:],
            query={name.lower(): value for name, value in request.query_params.items()},
            headers=headers,
            body=body,
        )

    def _dispatch(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        restype = call.query.get("restype")
        comp = call.query.get("comp")
        handler: Callable[[_Call], tuple[int, dict[str, str], bytes]] | None = None
        if call.share is None:
            if call.method == "GET" and comp == "list":
                handler = self._list_shares
        elif restype == "share" and comp is None:
            handler = {
                "PUT": self._create_share,
                "GET": self._share_properties,
                "HEAD": self._share_properties,
                "DELETE": self._delete_share,
            }.get(call.method)
        elif restype == "share" and comp == "metadata":
            handler = {
                "PUT": self._set_share_metadata,
                "GET": self._share_properties,
                "HEAD": self._share_properties,
            }.get(call.method)
        elif restype == "share" and comp == "properties" and call.method == "PUT":
            handler = self._set_share_properties
        elif restype == "directory" and comp == "list" and call.method == "GET":
            handler = self._list_directory
        elif restype == "directory" and comp is None:
            handler = {
                "PUT": self._create_directory,
                "GET": self._directory_properties,
                "HEAD": self._directory_properties,
                "DELETE": self._delete_directory,
            }.get(call.method)
        elif restype is None and call.parts:
            if "x-ms-copy-source" in call.headers:
                handler = None  # server-side copy is not emulated: answered 501 like any other operation it lacks
            elif comp == "range" and call.method == "PUT":
                handler = self._put_range
            elif comp is None:
                handler = {
                    "PUT": self._create_file,
                    "GET": self._download,
                    "HEAD": self._file_properties,
                    "DELETE": self._delete_file,
                }.get(call.method)
        if handler is None:
            raise StorageError(
                501,
                "NotImplemented",
                f"The devstack Files emulator does not implement {call.method} {dict(call.query)}.",
            )
        return handler(call)

    # --- service and shares ------------------------------------------------------------------

    def _share(self, call: _Call) -> str:
        assert call.share is not None
        return call.share

    def _list_shares(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        prefix = call.query.get("prefix", "")
        marker = call.query.get("marker", "")
        max_results = int(call.query["maxresults"]) if "maxresults" in call.query else 5000
        shares = [s for s in self.store.list_shares(call.account, prefix) if s.name >= marker]
        page, rest = shares[:max_results], shares[max_results:]
        root = ET.Element("EnumerationResults", {"ServiceEndpoint": call.endpoint})
        if prefix:
            _sub(root, "Prefix", prefix)
        if marker:
            _sub(root, "Marker", marker)
        if "maxresults" in call.query:
            _sub(root, "MaxResults", str(max_results))
        shares_element = _sub(root, "Shares")
        for share in page:
            item = _sub(shares_element, "Share")
            _sub(item, "Name", share.name)
            properties = _sub(item, "Properties")
            _sub(properties, "Last-Modified", _rfc1123(share.last_modified))
            _sub(properties, "Etag", share.etag)
            _sub(properties, "Quota", str(share.quota_gib))
            if "metadata" in call.query.get("include", "") and share.metadata:
                metadata = _sub(item, "Metadata")
                for key, value in share.metadata.items():
                    _sub(metadata, key, value)
        _sub(root, "NextMarker", rest[0].name if rest else "")
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _create_share(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        quota = call.headers.get("x-ms-share-quota")
        info = self.store.create_share(
            call.account, self._share(call), _metadata(call.headers), int(quota) if quota else None
        )
        return 201, {"ETag": info.etag, "Last-Modified": _rfc1123(info.last_modified)}, b""

    def _share_properties(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        info = self.store.share_info(call.account, self._share(call))
        headers = _share_headers(info)
        headers.update(
            {
                "x-ms-share-quota": str(info.quota_gib),
                "x-ms-access-tier": "TransactionOptimized",
                "x-ms-enabled-protocols": "SMB",
                "x-ms-lease-state": "available",
                "x-ms-lease-status": "unlocked",
            }
        )
        return 200, headers, b""

    def _set_share_metadata(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        info = self.store.set_share(call.account, self._share(call), metadata=_metadata(call.headers))
        return 200, {"ETag": info.etag, "Last-Modified": _rfc1123(info.last_modified)}, b""

    def _set_share_properties(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        quota = call.headers.get("x-ms-share-quota")
        if quota is not None and (not quota.isdigit() or not 1 <= int(quota) <= 102400):
            raise StorageError(
                400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format."
            )
        info = self.store.set_share(call.account, self._share(call), quota_gib=int(quota) if quota else None)
        return 200, {"ETag": info.etag, "Last-Modified": _rfc1123(info.last_modified)}, b""

    def _delete_share(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        self.store.delete_share(call.account, self._share(call))
        return 202, {}, b""

    # --- directories -------------------------------------------------------------------------

    def _create_directory(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        if not call.parts:
            raise StorageError(409, "ResourceAlreadyExists", "The specified resource already exists.")
        info = self.store.create_directory(call.account, self._share(call), call.parts, _metadata(call.headers))
        return 201, {**_smb_headers(info), "x-ms-request-server-encrypted": "false"}, b""

    def _directory_properties(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        info = self.store.directory_info(call.account, self._share(call), call.parts)
        headers = {**_smb_headers(info), **_metadata_headers(info.metadata), "x-ms-server-encrypted": "false"}
        return 200, headers, b""

    def _delete_directory(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        self.store.delete_directory(call.account, self._share(call), call.parts)
        return 202, {}, b""

    def _list_directory(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        share = self._share(call)
        prefix = call.query.get("prefix", "")
        marker = call.query.get("marker", "")
        max_results = int(call.query["maxresults"]) if "maxresults" in call.query else None
        directory = self.store.directory_info(call.account, share, call.parts)
        listing = self.store.list_directory(
            call.account, share, call.parts, prefix=prefix, marker=marker, max_results=max_results
        )
        root = ET.Element(
            "EnumerationResults",
            {"ServiceEndpoint": call.endpoint, "ShareName": share, "DirectoryPath": "/".join(call.parts)},
        )
        _sub(root, "Prefix", prefix)
        if marker:
            _sub(root, "Marker", marker)
        if max_results is not None:
            _sub(root, "MaxResults", str(max_results))
        _sub(root, "DirectoryId", directory.file_id)
        entries = _sub(root, "Entries")
        for entry in sorted([*listing.directories, *listing.files], key=lambda e: e.name):
            item = _sub(entries, "Directory" if entry.is_directory else "File")
            _name_element(item, entry.name)
            _sub(item, "FileId", entry.file_id)
            properties = _sub(item, "Properties")
            if not entry.is_directory:
                _sub(properties, "Content-Length", str(entry.size))
            _sub(properties, "CreationTime", _iso7(entry.creation_time))
            _sub(properties, "LastAccessTime", _iso7(entry.last_write_time))
            _sub(properties, "LastWriteTime", _iso7(entry.last_write_time))
            _sub(properties, "ChangeTime", _iso7(entry.change_time))
            _sub(properties, "Last-Modified", _rfc1123(entry.last_modified))
            _sub(properties, "Etag", entry.etag)
            _sub(item, "Attributes", "Directory" if entry.is_directory else "Archive")
        _sub(root, "NextMarker", listing.next_marker)
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    # --- files -------------------------------------------------------------------------------

    def _create_file(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        if call.headers.get("x-ms-type", "").lower() != "file":
            raise StorageError(400, "MissingRequiredHeader", "An HTTP header that's mandatory is missing: x-ms-type.")
        try:
            size = int(call.headers["x-ms-content-length"])
        except (KeyError, ValueError) as error:
            raise StorageError(
                400, "MissingRequiredHeader", "An HTTP header that's mandatory is missing: x-ms-content-length."
            ) from error
        content = ContentHeaders(
            content_type=call.headers.get("x-ms-content-type") or "application/octet-stream",
            content_encoding=call.headers.get("x-ms-content-encoding"),
            content_language=call.headers.get("x-ms-content-language"),
            cache_control=call.headers.get("x-ms-cache-control"),
            content_disposition=call.headers.get("x-ms-content-disposition"),
            content_md5=call.headers.get("x-ms-content-md5"),
        )
        info = self.store.create_file(
            call.account, self._share(call), call.parts, size=size, metadata=_metadata(call.headers), headers=content
        )
        return 201, {**_smb_headers(info), "x-ms-request-server-encrypted": "false"}, b""

    def _put_range(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        parsed = _parse_range(call.headers.get("x-ms-range") or call.headers.get("range"))
        start, end = parsed if parsed is not None else (0, None)
        if parsed is None or end is None:
            raise StorageError(400, "MissingRequiredHeader", "An HTTP header that's mandatory is missing: x-ms-range.")
        length = end - start + 1
        write = call.headers.get("x-ms-write", "").lower()
        share = self._share(call)
        if write == "clear":
            info = self.store.clear_range(call.account, share, call.parts, start, end)
            return 201, {"ETag": info.etag, "Last-Modified": _rfc1123(info.last_modified)}, b""
        if write != "update":
            raise StorageError(400, "InvalidHeaderValue", "The value for x-ms-write must be 'update' or 'clear'.")
        if length > MAX_RANGE_BYTES:
            raise StorageError(413, "RequestBodyTooLarge", "The request body is too large and exceeds 4 MiB.")
        if len(call.body) != length:
            raise StorageError(400, "InvalidHeaderValue", "The Content-Length does not match the size of the range.")
        digest = base64.b64encode(hashlib.md5(call.body, usedforsecurity=False).digest()).decode()
        given_md5 = call.headers.get("content-md5")
        if given_md5 and given_md5 != digest:
            raise StorageError(400, "Md5Mismatch", "The MD5 value specified in the request did not match the content.")
        info = self.store.write_range(call.account, share, call.parts, start, call.body)
        headers = {
            "ETag": info.etag,
            "Last-Modified": _rfc1123(info.last_modified),
            "Content-MD5": digest,
            "x-ms-request-server-encrypted": "false",
        }
        return 201, headers, b""

    def _file_properties(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        info = self.store.file_info(call.account, self._share(call), call.parts)
        return 200, {**_file_headers(info), "Content-Length": str(info.size)}, b""

    def _download(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        share = self._share(call)
        requested = _parse_range(call.headers.get("x-ms-range") or call.headers.get("range"))
        info = self.store.file_info(call.account, share, call.parts)
        if requested is None:
            _, data = self.store.read(call.account, share, call.parts, 0, info.size - 1)
            return 200, {**_file_headers(info), "Accept-Ranges": "bytes"}, data
        start, end = requested
        if start >= info.size:
            raise StorageError(
                416, "InvalidRange", "The range specified is invalid for the current size of the resource."
            )
        last = info.size - 1 if end is None else min(end, info.size - 1)
        info, data = self.store.read(call.account, share, call.parts, start, last)
        headers = _file_headers(info)
        headers.pop("Content-MD5", None)
        if info.headers.content_md5:
            headers["x-ms-content-md5"] = info.headers.content_md5
        if call.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
            if len(data) > MAX_RANGE_BYTES:
                raise StorageError(400, "OutOfRangeInput", "A range with an MD5 may be at most 4 MiB.")
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        headers.update({"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{last}/{info.size}"})
        return 206, headers, data

    def _delete_file(self, call: _Call) -> tuple[int, dict[str, str], bytes]:
        self.store.delete_file(call.account, self._share(call), call.parts)
        return 202, {}, b""

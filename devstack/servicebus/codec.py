"""Read and splice encoded AMQP 1.0 messages at the byte level, so nothing a sender encoded is lost."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from proton import Data, Described

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78

_SECTION_NAMES = {
    "amqp:header:list": HEADER,
    "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    "amqp:properties:list": PROPERTIES,
    "amqp:application-properties:map": APPLICATION_PROPERTIES,
    "amqp:data:binary": DATA,
    "amqp:amqp-sequence:list": AMQP_SEQUENCE,
    "amqp:value:*": AMQP_VALUE,
    "amqp:footer:map": FOOTER,
}


class CodecError(ValueError):
    """The bytes are not a well-formed AMQP 1.0 message."""


def _skip(buf: bytes, pos: int) -> int:
    """Return the offset just past the encoded value starting at ``pos``."""
    if pos >= len(buf):
        raise CodecError("truncated value")
    code = buf[pos]
    pos += 1
    if code == 0x00:
        return _skip(buf, _skip(buf, pos))
    width = code >> 4
    fixed = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}
    if width in fixed:
        end = pos + fixed[width]
    elif width in (0xA, 0xC, 0xE):
        if pos >= len(buf):
            raise CodecError("truncated size")
        end = pos + 1 + buf[pos]
    elif width in (0xB, 0xD, 0xF):
        if pos + 4 > len(buf):
            raise CodecError("truncated size")
        end = pos + 4 + struct.unpack_from(">I", buf, pos)[0]
    else:
        raise CodecError(f"unknown type constructor 0x{code:02x}")
    if end > len(buf):
        raise CodecError("value runs past the end of the message")
    return end


_BINARY_OR_STRING = frozenset({0xA0, 0xB0, 0xA1, 0xB1})
"""Constructors of vbin8/vbin32 and str8/str32: the values a message body contributes bytes from."""


def decode_value(encoded: bytes) -> object:
    """Decode one encoded AMQP value into Python (via proton's Data).

    proton cannot hold every valid value in Python (a map with binary keys fails: memoryviews do not hash);
    such a value raises :class:`CodecError`, and a caller that only needs part of a message skips it.
    """
    data = Data()
    try:
        data.decode(encoded)
        data.rewind()
        data.next()
        return _detach(data.get_object())
    except (ValueError, TypeError, KeyError) as error:
        raise CodecError(f"a value proton cannot represent in Python: {error}") from error


def _detach(value: object) -> object:
    """Copy memoryviews (which point into proton's buffer) into bytes, recursively."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [_detach(item) for item in value]
    if isinstance(value, dict):
        return {key: _detach(item) for key, item in value.items()}
    return value


def _section_code(descriptor: bytes) -> int:
    value = decode_value(descriptor)
    if isinstance(value, int):
        return int(value)
    code = _SECTION_NAMES.get(str(value))
    if code is None:
        raise CodecError(f"unknown section descriptor {value!r}")
    return code


@dataclass(frozen=True)
class Section:
    """One section of an encoded message: its code, the whole encoded section, and its encoded value."""

    code: int
    encoded: bytes
    value: bytes


def split_sections(raw: bytes) -> list[Section]:
    """Split an encoded message into its sections, in order. Raises ``CodecError`` on malformed input."""
    raw = bytes(raw)
    sections: list[Section] = []
    pos = 0
    while pos < len(raw):
        if raw[pos] != 0x00:
            raise CodecError(f"expected a described section at offset {pos}")
        descriptor_end = _skip(raw, pos + 1)
        end = _skip(raw, descriptor_end)
        sections.append(Section(_section_code(raw[pos + 1 : descriptor_end]), raw[pos:end], raw[descriptor_end:end]))
        pos = end
    if not sections:
        raise CodecError("empty message")
    return sections


def map_entries(encoded_map: bytes) -> list[tuple[bytes, bytes]]:
    """Split an encoded map into (encoded key, encoded value) pairs without decoding the values."""
    code = encoded_map[0]
    if code == 0x40:
        return []
    if code == 0xC1:
        pos, end = 3, 2 + encoded_map[1]
    elif code == 0xD1:
        pos, end = 9, 5 + struct.unpack_from(">I", encoded_map, 1)[0]
    else:
        raise CodecError(f"expected a map, got constructor 0x{code:02x}")
    entries: list[tuple[bytes, bytes]] = []
    while pos < end:
        key_end = _skip(encoded_map, pos)
        value_end = _skip(encoded_map, key_end)
        entries.append((encoded_map[pos:key_end], encoded_map[key_end:value_end]))
        pos = value_end
    return entries


def encode_map(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Encode (encoded key, encoded value) pairs as a map32."""
    pairs = list(entries)
    body = b"".join(key + value for key, value in pairs)
    return b"\xd1" + struct.pack(">II", len(body) + 4, len(pairs) * 2) + body


def key_name(encoded_key: bytes) -> str:
    """The text of an encoded string or symbol map key ('' for other key types)."""
    value = decode_value(encoded_key)
    return str(value) if isinstance(value, str) else ""


def _encoded(put: Callable[[Data], None]) -> bytes:
    data = Data()
    put(data)
    return bytes(data.encode())


def symbol(name: str) -> bytes:
    """Encode a symbol."""
    return _encoded(lambda d: d.put_symbol(name))


def string(text: str) -> bytes:
    """Encode a string."""
    return _encoded(lambda d: d.put_string(text))


def long(value: int) -> bytes:
    """Encode a signed 64-bit integer."""
    return _encoded(lambda d: d.put_long(value))


def int32(value: int) -> bytes:
    """Encode a signed 32-bit integer."""
    return _encoded(lambda d: d.put_int(value))


def timestamp(seconds: float) -> bytes:
    """Encode a timestamp given in epoch seconds (AMQP stores milliseconds)."""
    return _encoded(lambda d: d.put_timestamp(int(seconds * 1000)))


def _described_section(code: int, body: bytes) -> bytes:
    return b"\x00\x53" + bytes([code]) + body


@dataclass(frozen=True)
class MessageFacts:
    """What the broker needs to know about a message it was sent."""

    message_id: str | None
    ttl_seconds: float | None
    scheduled_enqueue_time: float | None
    header: tuple[bool, int, int | None, bool]
    body: bytes | None
    fields: Mapping[str, str | None] = field(default_factory=dict)
    application_properties: Mapping[str, object] = field(default_factory=dict)


# Message properties list positions of the fields a correlation filter can match.
_PROPERTY_FIELDS = {
    "message_id": 0,
    "to": 2,
    "subject": 3,
    "reply_to": 4,
    "correlation_id": 5,
    "content_type": 6,
    "session_id": 10,
    "reply_to_session_id": 12,
}


def _as_epoch(value: object) -> float | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, int):
        return value / 1000.0
    return None


def _as_id(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def read_facts(raw: bytes) -> MessageFacts:
    """Extract message id, TTL, scheduled enqueue time, header fields and data body from an encoded message."""
    message_id: str | None = None
    ttl: float | None = None
    scheduled: float | None = None
    header: tuple[bool, int, int | None, bool] = (False, 4, None, False)
    body_parts: list[bytes] = []
    fields: dict[str, str | None] = {}
    application_properties: dict[str, object] = {}
    for section in split_sections(raw):
        if section.code == HEADER:
            slots = list(decode_value(section.value) or [])  # type: ignore[call-overload]
            slots += [None] * (5 - len(slots))
            header = (
                bool(slots[0]),
                int(slots[1]) if slots[1] is not None else 4,
                int(slots[2]) if slots[2] is not None else None,
                bool(slots[3]),
            )
            if slots[2]:
                ttl = int(slots[2]) / 1000.0
        elif section.code == PROPERTIES:
            props = decode_value(section.value)
            if isinstance(props, list) and props:
                message_id = _as_id(props[0])
                props += [None] * (13 - len(props))
                for attribute, index in _PROPERTY_FIELDS.items():
                    fields[attribute] = _as_id(props[index])
        elif section.code == APPLICATION_PROPERTIES:
            values = decode_value(section.value)
            if isinstance(values, dict):
                application_properties = {str(key): value for key, value in values.items()}
        elif section.code == MESSAGE_ANNOTATIONS:
            for key, value in map_entries(section.value):
                if key_name(key) == "x-opt-scheduled-enqueue-time":
                    scheduled = _as_epoch(decode_value(value))
        elif section.code in (DATA, AMQP_VALUE):
            if not section.value or section.value[0] not in _BINARY_OR_STRING:
                continue  # a list, map or number as the body: kept as sent, it adds no bytes to the facts
            part = decode_value(section.value)
            if isinstance(part, (bytes, memoryview)):
                body_parts.append(bytes(part))
            elif isinstance(part, str):
                body_parts.append(part.encode())
    body = b"".join(body_parts) if body_parts else None
    return MessageFacts(message_id, ttl, scheduled, header, body, fields, application_properties)


def unbatch(raw: bytes) -> list[bytes]:
    """Return the messages inside a batch, or ``[raw]`` when ``raw`` is an ordinary message.

    A batch (message-format 0x80013700) has data sections that each hold a complete encoded message
    (the SDK also copies the first message's properties onto the envelope). proton does not expose the
    transfer's message-format, so the shape identifies a batch: every body section is a data section
    whose payload parses as a message with a body.
    """
    sections = split_sections(raw)
    bodies = [section for section in sections if section.code in (DATA, AMQP_SEQUENCE, AMQP_VALUE)]
    if not bodies or any(section.code != DATA for section in bodies):
        return [raw]
    inner: list[bytes] = []
    for section in bodies:
        payload = decode_value(section.value)
        if not isinstance(payload, (bytes, memoryview)):
            return [raw]
        candidate = bytes(payload)
        try:
            inner_sections = split_sections(candidate)
        except CodecError:
            return [raw]
        if not any(s.code in (DATA, AMQP_SEQUENCE, AMQP_VALUE) for s in inner_sections):
            return [raw]
        inner.append(candidate)
    return inner


def render(
    raw: bytes,
    *,
    delivery_count: int,
    annotations: Mapping[str, bytes],
    application_properties: Mapping[str, bytes] | None = None,
) -> bytes:
    """Re-emit ``raw`` with a header carrying ``delivery_count`` and the given annotations/properties set.

    ``annotations`` and ``application_properties`` map names to already encoded values; they replace
    entries of the same name and keep every other entry byte for byte. Every other section is copied
    unchanged.
    """
    sections = split_sections(raw)
    by_code = {section.code: section for section in sections}
    facts_header = read_facts(raw).header if HEADER in by_code else (False, 4, None, False)
    durable, priority, ttl_ms, first_acquirer = facts_header

    def put_header(d: Data) -> None:
        d.put_described()
        d.enter()
        d.put_ulong(HEADER)
        d.put_list()
        d.enter()
        d.put_bool(durable)
        d.put_ubyte(priority)
        if ttl_ms is None:
            d.put_null()
        else:
            d.put_uint(ttl_ms)
        d.put_bool(first_acquirer)
        d.put_uint(delivery_count)
        d.exit()
        d.exit()

    def merged(code: int, updates: Mapping[str, bytes]) -> bytes:
        existing = map_entries(by_code[code].value) if code in by_code else []
        kept = [(key, value) for key, value in existing if key_name(key) not in updates]
        key_encoder = symbol if code == MESSAGE_ANNOTATIONS else string
        return _described_section(code, encode_map(kept + [(key_encoder(k), v) for k, v in updates.items()]))

    out = [_encoded(put_header)]
    if DELIVERY_ANNOTATIONS in by_code:
        out.append(by_code[DELIVERY_ANNOTATIONS].encoded)
    out.append(merged(MESSAGE_ANNOTATIONS, annotations))
    if PROPERTIES in by_code:
        out.append(by_code[PROPERTIES].encoded)
    if application_properties:
        out.append(merged(APPLICATION_PROPERTIES, application_properties))
    elif APPLICATION_PROPERTIES in by_code:
        out.append(by_code[APPLICATION_PROPERTIES].encoded)
    out.extend(s.encoded for s in sections if s.code in (DATA, AMQP_SEQUENCE, AMQP_VALUE, FOOTER))
    return b"".join(out)


def described_value(value: object) -> object:
    """Unwrap a proton ``Described`` into its value; other values pass through."""
    return value.value if isinstance(value, Described) else value

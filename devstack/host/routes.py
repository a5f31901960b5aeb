"""HTTP trigger route templates (ASP.NET Core syntax) compiled to matchers with the host's precedence.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}``, defaults ``{name=value}``,
catch-all ``{*name}`` / ``{**name}``, several parameters in one segment (``{file}.{ext}``), and constraints
``int long bool guid alpha decimal double float datetime required minlength maxlength length min max range
regex``. An unknown constraint is logged and ignored rather than failing the app.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

logger = logging.getLogger(__name__)

_CONSTRAINT = re.compile(r"^(?P<name>[A-Za-z]+)(?:\((?P<args>.*)\))?$", re.DOTALL)


class RouteTemplateError(ValueError):
    """A route template cannot be parsed."""


@dataclass(frozen=True)
class Parameter:
    """One ``{...}`` route parameter."""

    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[Callable[[str], bool], ...] = ()


@dataclass(frozen=True)
class Segment:
    """One ``/``-separated part of a template: literal text and parameters, in order."""

    parts: tuple[str | Parameter, ...]

    @property
    def parameters(self) -> list[Parameter]:
        return [part for part in self.parts if isinstance(part, Parameter)]

    @property
    def precedence(self) -> int:
        """ASP.NET inbound precedence digit: literal 1, multi-part 2, constrained 3, parameter 4, catch-all 5."""
        if not self.parameters:
            return 1
        if len(self.parts) > 1:
            return 2
        parameter = self.parameters[0]
        if parameter.catch_all:
            return 5
        return 3 if parameter.constraints else 4


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed template that matches request paths (without the route prefix) and extracts parameters."""

    text: str
    segments: tuple[Segment, ...]
    _pattern: re.Pattern[str] = field(repr=False, compare=False)
    _groups: dict[str, Parameter] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> RouteTemplate:
        """Parse ``text`` (e.g. ``jobs/{id:int}/{*rest}``); raises RouteTemplateError when malformed."""
        stripped = text.strip().strip("/")
        if "?" in stripped.replace("?}", "").replace("?=", ""):
            raise RouteTemplateError(f"route {text!r}: a query string is not allowed in a route template")
        raw_segments = _split_segments(stripped) if stripped else []
        segments = tuple(_parse_segment(raw, text) for raw in raw_segments)
        _check_shape(segments, text)
        pattern, groups = _compile(segments)
        return cls(text=text, segments=segments, _pattern=pattern, _groups=groups)

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key: smaller matches first, like ASP.NET's route precedence."""
        return tuple(segment.precedence for segment in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters when ``path`` (e.g. ``jobs/7``) matches, or None. Optional ones left out are absent."""
        found = self._pattern.match(path.strip("/"))
        if found is None:
            return None
        values: dict[str, str] = {}
        for group, parameter in self._groups.items():
            value = found.group(group)
            if value is None or value == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            if not all(check(value) for check in parameter.constraints):
                return None
            values[parameter.name] = value
        return values


def _split_segments(text: str) -> list[str]:
    segments: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "/" and depth == 0:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return segments


def _parse_segment(raw: str, template: str) -> Segment:
    if raw == "":
        raise RouteTemplateError(f"route {template!r}: empty segment")
    parts: list[str | Parameter] = []
    index = 0
    while index < len(raw):
        start = raw.find("{", index)
        if start < 0:
            parts.append(raw[index:])
            break
        if start > index:
            parts.append(raw[index:start])
        end = _closing_brace(raw, start, template)
        parts.append(_parse_parameter(raw[start + 1 : end], template))
        index = end + 1
    for previous, following in itertools.pairwise(parts):
        if isinstance(previous, Parameter) and isinstance(following, Parameter):
            raise RouteTemplateError(f"route {template!r}: two parameters need a literal between them")
    return Segment(parts=tuple(parts))


def _closing_brace(raw: str, start: int, template: str) -> int:
    depth = 0
    parens = 0
    for position in range(start, len(raw)):
        char = raw[position]
        if char == "(":
            parens += 1
        elif char == ")":
            parens -= 1
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and parens <= 0:
                return position
    raise RouteTemplateError(f"route {template!r}: unclosed '{{'")


def _parse_parameter(body: str, template: str) -> Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    name_and_constraints, equals, default_text = _split_default(body)
    if equals:
        default = default_text
    optional = name_and_constraints.endswith("?")
    name_and_constraints = name_and_constraints.removesuffix("?")
    name, *constraint_texts = _split_constraints(name_and_constraints)
    if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"route {template!r}: bad parameter name {name!r}")
    constraints = tuple(
        check for check in (_constraint(text, template) for text in constraint_texts) if check is not None
    )
    return Parameter(
        name=name,
        optional=optional or catch_all or default is not None,
        catch_all=catch_all,
        default=default,
        constraints=constraints,
    )


def _split_default(body: str) -> tuple[str, bool, str]:
    parens = 0
    for position, char in enumerate(body):
        if char == "(":
            parens += 1
        elif char == ")":
            parens -= 1
        elif char == "=" and parens == 0:
            return body[:position], True, body[position + 1 :]
    return body, False, ""


def _split_constraints(text: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    parens = 0
    for char in text:
        if char == "(":
            parens += 1
        elif char == ")":
            parens -= 1
        if char == ":" and parens == 0:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _constraint(text: str, template: str) -> Callable[[str], bool] | None:
    found = _CONSTRAINT.match(text)
    if found is None:
        logger.warning("route %r: ignoring unrecognised constraint %r", template, text)
        return None
    name = found.group("name").lower()
    args = [arg.strip() for arg in (found.group("args") or "").split(",")] if found.group("args") else []
    if name == "regex":
        source = (found.group("args") or "").replace("{{", "{").replace("}}", "}")
        expression = re.compile(source, re.IGNORECASE)
        return lambda value: expression.search(value) is not None
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda value: _is_integer(value, 32),
        "long": lambda value: _is_integer(value, 64),
        "bool": lambda value: value.lower() in {"true", "false"},
        "guid": _is_guid,
        "alpha": lambda value: value.isascii() and value.isalpha(),
        "decimal": _is_number,
        "double": _is_number,
        "float": _is_number,
        "datetime": _is_datetime,
        "required": lambda value: value != "",
    }
    if name in simple:
        return simple[name]
    try:
        numbers = [int(arg) for arg in args]
    except ValueError:
        numbers = []
    bounded: dict[tuple[str, int], Callable[[str], bool]] = {}
    if len(numbers) == 1:
        low = numbers[0]
        bounded = {
            ("minlength", 1): lambda value: len(value) >= low,
            ("maxlength", 1): lambda value: len(value) <= low,
            ("length", 1): lambda value: len(value) == low,
            ("min", 1): lambda value: _is_integer(value, 64) and int(value) >= low,
            ("max", 1): lambda value: _is_integer(value, 64) and int(value) <= low,
        }
    elif len(numbers) == 2:
        low, high = numbers
        bounded = {
            ("length", 2): lambda value: low <= len(value) <= high,
            ("range", 2): lambda value: _is_integer(value, 64) and low <= int(value) <= high,
        }
    check = bounded.get((name, len(numbers)))
    if check is None:
        logger.warning("route %r: ignoring unrecognised constraint %r", template, text)
    return check


def _is_integer(value: str, bits: int) -> bool:
    if not re.fullmatch(r"-?\d+", value):
        return False
    limit: int = 2 ** (bits - 1)
    number = int(value)
    return -limit <= number < limit


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_shape(segments: tuple[Segment, ...], template: str) -> None:
    names: set[str] = set()
    for position, segment in enumerate(segments):
        for parameter in segment.parameters:
            if parameter.name.lower() in names:
                raise RouteTemplateError(f"route {template!r}: parameter {parameter.name!r} appears twice")
            names.add(parameter.name.lower())
            if parameter.catch_all and position != len(segments) - 1:
                raise RouteTemplateError(f"route {template!r}: a catch-all parameter must be the last segment")
            if parameter.optional and len(segment.parts) > 1 and parameter is not segment.parts[-1]:
                raise RouteTemplateError(f"route {template!r}: only the last parameter of a segment may be optional")


def _compile(segments: tuple[Segment, ...]) -> tuple[re.Pattern[str], dict[str, Parameter]]:
    groups: dict[str, Parameter] = {}
    pattern = ""
    for position, segment in enumerate(segments):
        separator = "/" if position else ""
        body = ""
        for part in segment.parts:
            if isinstance(part, str):
                body += re.escape(part)
                continue
            group = f"p{len(groups)}"
            groups[group] = part
            if part.catch_all:
                body += f"(?P<{group}>.*)"
            else:
                body += f"(?P<{group}>[^/]+)"
        whole_segment_optional = len(segment.parts) == 1 and segment.parameters and segment.parameters[0].optional
        pattern += f"(?:{separator}{body})?" if whole_segment_optional else f"{separator}{body}"
    return re.compile(f"^{pattern}$", re.IGNORECASE | re.DOTALL), groups

"""Reading a job spec: YAML or JSON text to plain data to a validated :class:`~dispatcher.domain.spec.JobSpec`.

:func:`parse_job` and :func:`validate_job` are the only ways in: they run the models' structural validation
and then :func:`~dispatcher.domain.limits.check_limits`, and raise :class:`~dispatcher.domain.errors.InvalidJob`
with every problem, each naming its field. No message ever quotes the document: a parse error gives the line,
the column and the kind of problem, so an inline secret value cannot leak through it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from dispatcher.domain.errors import FieldError, InvalidJob
from dispatcher.domain.limits import check_limits
from dispatcher.domain.spec import MAX_SPEC_BYTES, SHORTHAND, JobSpec

SHORTHAND_FIELDS = frozenset(SHORTHAND)

_VOLUME_TAGS = ("share", "workspace", "secret", "emptyDir")


def _loc(parts: tuple[int | str, ...]) -> str:
    """A pydantic error location as the user wrote it: ``containers[0].cpu``."""
    if len(parts) >= 3 and parts[0] == "volumes" and parts[2] in _VOLUME_TAGS:
        parts = parts[:2] + parts[3:]  # drop the union tag pydantic inserts; the user never wrote it
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def errors_from(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"].removeprefix("Value error, ")
        out.append(FieldError(_loc(tuple(err["loc"])), message))
    return out


def validate_job(data: Any) -> JobSpec:
    """Validate already-parsed data into a :class:`JobSpec`, or raise :class:`InvalidJob` with every error."""
    if not isinstance(data, Mapping):
        raise InvalidJob([FieldError("", f"a job spec is a mapping of fields, not {type(data).__name__}")])
    shorthand = "containers" not in data and any(key in data for key in SHORTHAND)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidJob(_as_written(errors_from(exc), shorthand)) from None
    except RecursionError:
        raise InvalidJob([FieldError("", "the document is nested too deeply")]) from None
    problems = check_limits(spec)
    if problems:
        raise InvalidJob(_as_written(problems, shorthand))
    return spec


def _as_written(errors: list[FieldError], shorthand: bool) -> list[FieldError]:
    """Errors of the single container a shorthand stands for, named as the user wrote them: ``cpu``, not
    ``containers[0].cpu``."""
    if not shorthand:
        return errors
    prefix = "containers[0]."
    return [
        FieldError(e.loc.removeprefix(prefix), e.message)
        if e.loc.startswith(prefix) and e.loc.removeprefix(prefix).split(".")[0].split("[")[0] in SHORTHAND_FIELDS
        else e
        for e in errors
    ]


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases, which let a tiny document expand exponentially."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed in a job spec", event.start_mark)
        return super().compose_node(parent, index)


def _strict_json(text: str) -> Any:
    """``text`` as standard JSON (no ``NaN`` or ``Infinity``); ``ValueError`` if it is not."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_GRAMMAR = re.compile(r"^.(<[a-z ]+>|[^A-Za-z0-9\s])?.$")
"""A quoted part that names YAML's grammar, not the document: a token such as '<block end>' or one punctuation
character such as ':'."""


def _unquoted(text: str) -> str:
    kept = _QUOTED.sub(lambda m: m.group(0) if _GRAMMAR.match(m.group(0)) else "", text)
    return " ".join(kept.split())


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where, without any text of the document.

    PyYAML's message shows the offending lines and may quote characters or whole tokens (``found unknown
    escape character 'x'``); only the kind of problem is kept, without what it quotes, and the position.
    """
    if not isinstance(exc, yaml.MarkedYAMLError):
        return type(exc).__name__
    problem = _unquoted(exc.problem or exc.context or "a syntax error")
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def load_document(text: str | bytes) -> Any:
    """Parse a YAML or JSON document into plain data, or raise :class:`InvalidJob`.

    JSON is YAML, but PyYAML's pure-Python loader takes about a millisecond for a small spec, two hundred times
    longer than ``json``; a document that is standard JSON is read as JSON (the same data), anything else as YAML.
    """
    if len(text) > MAX_SPEC_BYTES:
        raise InvalidJob([FieldError("", f"the document is larger than {MAX_SPEC_BYTES // 1024} KiB")])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJob([FieldError("", f"the document is not UTF-8: {exc.reason}")]) from None
    data = _parsed(text)
    bad = _not_unicode(data, "")
    if bad is not None:
        raise InvalidJob([FieldError(bad, "holds a lone surrogate: not valid Unicode text")])
    return data


def _parsed(text: str) -> Any:
    if text.lstrip().startswith(("{", "[")):
        try:
            return _strict_json(text)
        except RecursionError:
            raise InvalidJob([FieldError("", "not a readable document: RecursionError")]) from None
        except ValueError:
            pass  # YAML flow style, or JSON with an error: the YAML loader reads it or says where it fails
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InvalidJob([FieldError("", f"not valid YAML or JSON: {yaml_problem(exc)}")]) from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise InvalidJob([FieldError("", f"not a readable document: {type(exc).__name__}")]) from None


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _not_unicode(data: Any, loc: str) -> str | None:
    """The location of the first string (key or value) that cannot be stored as UTF-8, such as JSON's
    ``"\\ud800"``: Table storage, Service Bus and every JSON encoder would refuse it later."""
    if isinstance(data, str):
        return (loc or "(document)") if _lone_surrogate(data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{loc}.{key}" if loc else str(key)
            if isinstance(key, str) and _lone_surrogate(key):
                return loc or "(document)"
            found = _not_unicode(value, here)
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = _not_unicode(value, f"{loc}[{index}]")
            if found is not None:
                return found
    return None


def parse_job(text: str | bytes) -> JobSpec:
    """Parse and validate a YAML or JSON job spec."""
    return validate_job(load_document(text))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the job spec, as committed in ``schemas/job.schema.json``."""
    schema = JobSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/aci-dispatcher/schemas/job.schema.json",
        **schema,
    }

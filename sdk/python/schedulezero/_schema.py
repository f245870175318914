"""JSON Schemas from type hints, and params checked and converted against the same hints.

A method's params are described by its signature: keyword parameters (each a property of the
params object), or one parameter typed as a dataclass or a TypedDict (the params object is that
type). The hints understood are `str`, `int`, `float`, `bool`, `None`, `Any`, `list[T]`,
`tuple[T, ...]`, `dict[str, T]`, `Optional[T]` and unions (`T | None`), `Literal[...]`, `Enum`
subclasses, dataclasses, TypedDicts, and `Annotated[T, "description"]` for a description. The
check refuses unknown properties, missing required ones and values of the wrong type, naming
where (`params.times: expected an integer, got "two"`).
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import types
import typing
from typing import Any, Literal, Union

_NONE_TYPE = type(None)


class ParamsError(ValueError):
    """The params do not fit the method's hints; the message names where."""


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def _hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp, include_extras=True)


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """The type inside `Annotated[...]` (and a TypedDict's `Required[...]` or
    `NotRequired[...]`), with the first string annotation as a description."""
    text = None
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp, *extras = typing.get_args(tp)
            text = text or next((e for e in extras if isinstance(e, str)), None)
        elif origin in (typing.Required, typing.NotRequired):
            (tp,) = typing.get_args(tp)
        else:
            return tp, text


def _required_keys(tp: Any) -> set[str]:
    """A TypedDict's required keys, from its hints (`Required`, `NotRequired`, `total`): the
    `__required_keys__` Python keeps are wrong for string annotations before 3.12."""
    required = set()
    for name, hint in _hints(tp).items():
        marked = None
        while marked is None:
            origin = typing.get_origin(hint)
            if origin is typing.Annotated:
                hint = typing.get_args(hint)[0]
            elif origin is typing.Required:
                marked = True
            elif origin is typing.NotRequired:
                marked = False
            else:
                marked = bool(tp.__total__)
        if marked:
            required.add(name)
    return required


def _field_docs(tp: Any) -> dict[str, str]:
    """Descriptions of a dataclass's or TypedDict's fields from `Annotated` hints."""
    docs = {}
    for name, hint in _hints(tp).items():
        _, text = _unwrap(hint)
        if text:
            docs[name] = text
    return docs


def schema_of(tp: Any) -> dict[str, Any]:
    """The JSON Schema of values of the hint `tp`."""
    tp, text = _unwrap(tp)
    out = _schema(tp)
    if text:
        out = {**out, "description": text}
    return out


def _schema(tp: Any) -> dict[str, Any]:
    if tp is Any or tp is object:
        return {}
    if tp is None or tp is _NONE_TYPE:
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is Union or origin is types.UnionType:
        return {"anyOf": [schema_of(a) for a in args]}
    if origin in (list, typing.List, set, frozenset) or tp in (list, set, frozenset):
        return {"type": "array", "items": schema_of(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0])}
        return {
            "type": "array",
            "prefixItems": [schema_of(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict or tp is dict:
        if args:
            return {"type": "object", "additionalProperties": schema_of(args[1])}
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        fields = [f for f in dataclasses.fields(tp) if f.init]
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        return _object(
            {f.name: _with_default(schema_of(hints[f.name]), f.default) for f in fields},
            required,
            tp.__doc__ if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "(") else None,
        )
    if _is_typeddict(tp):
        hints = _hints(tp)
        return _object(
            {name: schema_of(h) for name, h in hints.items()},
            sorted(_required_keys(tp)),
            tp.__doc__,
        )
    raise TypeError(f"no JSON Schema for the type hint {tp!r}")


def _with_default(schema: dict[str, Any], default: Any) -> dict[str, Any]:
    if default is dataclasses.MISSING or default is None and schema == {}:
        return schema
    if isinstance(default, enum.Enum):
        default = default.value
    if default is None or isinstance(default, (bool, int, float, str)):
        return {**schema, "default": default}
    return schema


def _object(props: dict[str, Any], required: list[str], doc: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    if doc and doc.strip():
        out["description"] = doc.strip().splitlines()[0]
    return out


_KIND = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _show(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def convert(tp: Any, value: Any, where: str) -> Any:
    """`value` (decoded JSON) checked against the hint `tp` and converted to it (dataclasses,
    enums, tuples); `ParamsError` naming `where` when it does not fit."""
    tp, _ = _unwrap(tp)
    if tp is Any or tp is object:
        return value
    if tp is None or tp is _NONE_TYPE:
        if value is None:
            return None
        raise ParamsError(f"{_at(where)}expected null, got {_show(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParamsError(f"{_at(where)}expected a boolean, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ParamsError(f"{_at(where)}expected an integer, got {_show(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ParamsError(f"{_at(where)}expected a number, got {_show(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ParamsError(f"{_at(where)}expected a string, got {_show(value)}")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return value
        raise ParamsError(f"{_at(where)}expected one of {_show(list(args))}, got {_show(value)}")
    if origin is Union or origin is types.UnionType:
        errors = []
        for option in args:
            try:
                return convert(option, value, where)
            except ParamsError as e:
                errors.append(str(e))
        if value is None:
            raise ParamsError(f"{_at(where)}may not be null")
        # An optional value that is there answers for its one type.
        typed = [e for option, e in zip(args, errors) if option is not _NONE_TYPE]
        if len(typed) == 1:
            raise ParamsError(typed[0])
        raise ParamsError(f"{_at(where)}{_show(value)} fits none of the allowed types")
    if origin in (list, typing.List, set, frozenset) or tp in (list, set, frozenset):
        if not isinstance(value, list):
            raise ParamsError(f"{_at(where)}expected an array, got {_show(value)}")
        items = [convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else value
        kind = origin or tp
        return kind(items) if kind in (set, frozenset) else items
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{_at(where)}expected an array, got {_show(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"{_at(where)}expected {len(args)} items, got {len(value)}")
        return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{_at(where)}expected an object, got {_show(value)}")
        if args:
            return {k: convert(args[1], v, _join(where, k)) for k, v in value.items()}
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if member.value == value and type(member.value) is type(value):
                return member
        raise ParamsError(f"{_at(where)}expected one of {_show([m.value for m in tp])}, got {_show(value)}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        obj = _fields(value, where, {n: hints[n] for n in fields}, {
            n for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        })
        return tp(**obj)
    if _is_typeddict(tp):
        return _fields(value, where, _hints(tp), _required_keys(tp))
    raise ParamsError(f"{_at(where)}the type hint {tp!r} cannot be checked")


def _fields(value: Any, where: str, hints: dict[str, Any], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParamsError(f"{_at(where)}expected an object, got {_show(value)}")
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise ParamsError(f"{_at(where)}unknown field `{unknown[0]}` (expected: {', '.join(sorted(hints)) or 'none'})")
    missing = sorted(required - set(value))
    if missing:
        raise ParamsError(f"{_at(where)}missing field `{missing[0]}`")
    return {name: convert(hints[name], v, _join(where, name)) for name, v in value.items()}


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data: dataclasses as objects, enums as their values, tuples and sets
    as arrays, datetimes as RFC 3339 text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    import datetime

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"a result of type {type(value).__name__} is not JSON data")


if sys.version_info < (3, 11):  # pragma: no cover
    raise ImportError("the ScheduleZero SDK needs Python 3.11 or newer")

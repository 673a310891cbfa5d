"""Lance's JSON schema (the ``schema`` of a describe answer, spec §2.3) as a
``pa.Schema``: the inverse of the server's ``SchemaToJson`` (remote/protocol.cc)."""

from __future__ import annotations

import base64
from typing import Any

import pyarrow as pa

from ..errors import InvalidError

_SIMPLE = {
    "null": pa.null(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "halffloat": pa.float16(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "date32:day": pa.date32(),
    "date64:ms": pa.date64(),
}


def _scalar_type(name: str) -> pa.DataType:
    if name in _SIMPLE:
        return _SIMPLE[name]
    parts = name.split(":")
    kind = parts[0]
    if kind == "time32" and len(parts) == 2:
        return pa.time32(parts[1])
    if kind == "time64" and len(parts) == 2:
        return pa.time64(parts[1])
    if kind == "duration" and len(parts) == 2:
        return pa.duration(parts[1])
    if kind == "timestamp" and len(parts) >= 2:
        tz = ":".join(parts[2:]) or None
        if tz == "-":
            tz = None
        return pa.timestamp(parts[1], tz=tz)
    if kind == "decimal" and len(parts) == 4:
        width, precision, scale = int(parts[1]), int(parts[2]), int(parts[3])
        return (pa.decimal128 if width == 128 else pa.decimal256)(precision, scale)
    if kind == "dict" and len(parts) == 4:
        return pa.dictionary(
            _scalar_type(parts[2]), _scalar_type(parts[1]), parts[3] == "true"
        )
    raise InvalidError(f"Unknown type {name!r} in the remote table's schema")


def _metadata(value: Any) -> dict[str, str] | None:
    return dict(value) if value else None


def _type(data: dict[str, Any], fields: list[pa.Field]) -> pa.DataType:
    name = data.get("type")
    if name in ("list", "large_list", "fixed_size_list"):
        if len(fields) != 1:
            raise InvalidError(f"A {name} in the remote table's schema needs one child")
        if name == "list":
            return pa.list_(fields[0])
        if name == "large_list":
            return pa.large_list(fields[0])
        return pa.list_(fields[0], int(data["length"]))
    if name == "struct":
        return pa.struct(fields)
    if name == "fixed_size_binary":
        return pa.binary(int(data["length"]))
    if not isinstance(name, str):
        raise InvalidError("A field of the remote table's schema has no type")
    return _scalar_type(name)


def _field(data: dict[str, Any]) -> pa.Field:
    type_info = data.get("type")
    if not isinstance(type_info, dict):  # older form: the type's name and fields inline
        type_info = data
    children = [_field(child) for child in type_info.get("fields") or []]
    return pa.field(
        data["name"],
        _type(type_info, children),
        nullable=bool(data.get("nullable", True)),
        metadata=_metadata(data.get("metadata")),
    )


def schema_from_json(data: Any) -> pa.Schema:
    """Raises InvalidError for a schema this client cannot read."""
    try:
        return pa.schema(
            [_field(field) for field in data["fields"]],
            metadata=_metadata(data.get("metadata")),
        )
    except (KeyError, TypeError, ValueError, pa.ArrowException) as error:
        raise InvalidError(f"Cannot read the remote table's schema: {error}") from error


def schema_of_describe(answer: dict) -> pa.Schema:
    """The schema of a describe answer. riffledb's servers send it exactly, as a base64
    Arrow IPC schema message (``arrow_schema``), beside the JSON one, which names only
    the types of LanceDB's format (a string_view column is "string" there); other
    servers send the JSON one only. An ``arrow_schema`` that does not read is ignored
    for the JSON one."""
    encoded = answer.get("arrow_schema")
    if isinstance(encoded, str):
        try:
            message = base64.b64decode(encoded, validate=True)
            return pa.ipc.read_schema(pa.py_buffer(message))
        except (ValueError, pa.ArrowException):
            pass
    return schema_from_json(answer["schema"])

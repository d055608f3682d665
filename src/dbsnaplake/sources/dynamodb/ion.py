"""Lines of an Amazon Ion export (``$ion_1_0 {Item:{...}}``) in the shape of DynamoDB JSON, so that one decoder
reads both. Needs ``amazon.ion`` (the ``ion`` extra).

DynamoDB writes S as Ion strings, N as decimals, B as blobs, BOOL, NULL, M as structs, L as lists, and sets as
lists annotated ``$dynamodb_SS``, ``$dynamodb_NS`` or ``$dynamodb_BS``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from types import ModuleType
from typing import Any

from dbsnaplake.errors import SnapshotError

INSTALL_HINT = (
    "reading a DynamoDB export in Ion format needs amazon.ion: pip install 'dbsnaplake[ion]' "
    "(or export the table again with --export-format DYNAMODB_JSON)"
)
IMAGES = ("Item", "Keys", "NewImage", "OldImage", "Metadata")
SET_ANNOTATIONS = {"$dynamodb_SS": "SS", "$dynamodb_NS": "NS", "$dynamodb_BS": "BS"}


@functools.cache
def ion() -> ModuleType:
    """``amazon.ion.simpleion``, or a :class:`SnapshotError` that says how to install it."""
    try:
        from amazon.ion import simpleion  # type: ignore[import-untyped]
    except ImportError:
        raise SnapshotError(INSTALL_HINT) from None
    module: ModuleType = simpleion
    return module


def parse_record(line: bytes) -> dict[str, Any]:
    """One Ion line → ``{"Item": {"pk": {"S": "a"}, ...}}`` (or ``Keys``/``NewImage``/``OldImage``/``Metadata``);
    raises ``ValueError`` when the line is not Ion or holds a value DynamoDB does not write."""
    simpleion = ion()
    try:
        record = simpleion.loads(line)
    except Exception as exc:  # amazon.ion raises IonException, ValueError, TypeError...
        raise ValueError(f"not Ion: {exc}") from None
    if not isinstance(record, Mapping):
        raise ValueError(f"expected an Ion struct, got {type(record).__name__}")
    return {key: _image(value) if key in IMAGES else value for key, value in record.items()}


def _image(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value  # left for the decoder to refuse, naming the line
    return {name: typed(member) for name, member in value.items()}


def typed(value: Any) -> dict[str, Any]:
    """An Ion value as a DynamoDB typed value: ``"a"`` → ``{"S": "a"}``, ``1.5`` → ``{"N": "1.5"}``."""
    kind = getattr(getattr(value, "ion_type", None), "name", None)
    if value is None or kind == "NULL" or type(value).__name__ == "IonPyNull":
        return {"NULL": True}
    if kind == "BOOL":
        return {"BOOL": bool(value)}
    if kind == "STRING":
        return {"S": str(value)}
    if kind in ("DECIMAL", "INT", "FLOAT"):
        return {"N": _number(value)}
    if kind == "BLOB":
        return {"B": bytes(value)}
    if kind == "STRUCT":
        return {"M": {name: typed(member) for name, member in value.items()}}
    if kind == "LIST":
        annotations = [getattr(a, "text", a) for a in getattr(value, "ion_annotations", ())]
        set_tag = next((SET_ANNOTATIONS[a] for a in annotations if a in SET_ANNOTATIONS), None)
        if set_tag == "SS":
            return {"SS": [str(m) for m in value]}
        if set_tag == "NS":
            return {"NS": [_number(m) for m in value]}
        if set_tag == "BS":
            return {"BS": [bytes(m) for m in value]}
        return {"L": [typed(m) for m in value]}
    raise ValueError(f"Ion {kind or type(value).__name__} value {value!r} is not a type DynamoDB exports")


def _number(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(Decimal(value))
    if isinstance(value, float):
        return repr(float(value))
    return str(int(value))

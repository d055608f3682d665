"""The Thrift compact protocol, generically: a Parquet footer decoded into plain values and encoded back unchanged.

A Parquet file's footer (``FileMetaData``) is a Thrift struct in the compact protocol. :func:`decode_struct` reads
one into a :class:`Struct` (field id → :class:`Field`, the wire type kept beside the value) without knowing the
schema, and :func:`encode_struct` writes it back: decoding and encoding a footer gives its bytes again, so a caller
can change a few known fields (offsets, counts) and leave every other one, known or not, exactly as it was.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from dbsnaplake.errors import SnapshotError

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
_INTEGERS = (I16, I32, I64)


@dataclass
class Field:
    """One field's wire type and value: ``bool`` (TRUE/FALSE), ``int``, ``float``, ``bytes``, a :class:`Struct`,
    a :class:`Sequence` (LIST, SET) or a :class:`Mapping` (MAP). (A bool element of a list is its byte, an int.)"""

    kind: int
    value: Any


Struct = dict[int, Field]
"""A struct's fields by id."""


@dataclass
class Sequence:
    """A LIST or SET: its elements' wire type and the elements."""

    element: int
    items: list[Any]


@dataclass
class Mapping:
    """A MAP: its keys' and values' wire types and the pairs."""

    key: int
    value: int
    items: list[tuple[Any, Any]]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise SnapshotError("a Parquet footer ends in the middle of a value")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise SnapshotError("a Parquet footer ends in the middle of a value")
        value = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return value

    def value(self, kind: int) -> Any:
        if kind in (TRUE, FALSE):  # an element of a list: one byte, kept as it was (writers differ on false)
            return self.byte()
        if kind == BYTE:
            return self.byte()
        if kind in _INTEGERS:
            return self.zigzag()
        if kind == DOUBLE:
            return struct.unpack("<d", self.take(8))[0]
        if kind == BINARY:
            return self.take(self.varint())
        if kind in (LIST, SET):
            header = self.byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            return Sequence(element, [self.value(element) for _ in range(size)])
        if kind == MAP:
            size = self.varint()
            if not size:
                return Mapping(0, 0, [])
            kinds = self.byte()
            key, value = kinds >> 4, kinds & 0x0F
            return Mapping(key, value, [(self.value(key), self.value(value)) for _ in range(size)])
        if kind == STRUCT:
            return self.struct()
        raise SnapshotError(f"a Parquet footer holds a value of unknown Thrift type {kind}")

    def struct(self) -> Struct:
        fields: Struct = {}
        last = 0
        while True:
            header = self.byte()
            if header == STOP:
                return fields
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = Field(kind, kind == TRUE if kind in (TRUE, FALSE) else self.value(kind))


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while n > 0x7F:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def value(self, kind: int, value: Any) -> None:
        if kind in (TRUE, FALSE):
            self.out.append(value if isinstance(value, int) and not isinstance(value, bool) else TRUE if value else FALSE)
        elif kind == BYTE:
            self.out.append(value & 0xFF)
        elif kind in _INTEGERS:
            self.zigzag(value)
        elif kind == DOUBLE:
            self.out += struct.pack("<d", value)
        elif kind == BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (LIST, SET):
            size = len(value.items)
            self.out.append((min(size, 15) << 4) | value.element)
            if size >= 15:
                self.varint(size)
            for item in value.items:
                self.value(value.element, item)
        elif kind == MAP:
            self.varint(len(value.items))
            if value.items:
                self.out.append((value.key << 4) | value.value)
            for k, v in value.items:
                self.value(value.key, k)
                self.value(value.value, v)
        elif kind == STRUCT:
            self.struct(value)
        else:
            raise ValueError(f"unknown Thrift type {kind}")

    def struct(self, fields: Struct) -> None:
        last = 0
        for field_id in sorted(fields):
            field = fields[field_id]
            kind = (TRUE if field.value else FALSE) if field.kind in (TRUE, FALSE) else field.kind
            delta = field_id - last
            if 0 < delta <= 15:
                self.out.append((delta << 4) | kind)
            else:
                self.out.append(kind)
                self.zigzag(field_id)
            if kind not in (TRUE, FALSE):
                self.value(kind, field.value)
            last = field_id
        self.out.append(STOP)


def decode_struct(data: bytes) -> Struct:
    """The struct ``data`` starts with (a Parquet footer: ``FileMetaData``); :class:`SnapshotError` when it is not
    one."""
    try:
        return _Reader(data).struct()
    except RecursionError:
        raise SnapshotError("a Parquet footer nests structs deeper than any Parquet writer does") from None


def encode_struct(fields: Struct) -> bytes:
    """``fields`` in the compact protocol: the bytes they were decoded from, when unchanged."""
    writer = _Writer()
    writer.struct(fields)
    return bytes(writer.out)

"""DynamoDB typed values (``{"S": "a"}``, ``{"N": "1.5"}``, ``{"M": {...}}``): one Arrow type per attribute,
decided over a whole export, and items decoded into Arrow tables of that schema.

How each DynamoDB type is read:

- ``S`` → string; ``B`` → binary (base64 decoded); ``BOOL`` → bool; ``NULL`` → null.
- ``N`` → int64 when every value of the attribute is a whole number within int64; otherwise
  ``decimal128(38, s)``, ``s`` the most decimals seen, when every value fits 38 digits that way; otherwise
  float64 (with a warning: about 16 significant digits are kept).
- ``SS`` / ``NS`` / ``BS`` → list of string / number (typed like ``N``) / binary. A set's members are unique and
  their order carries no meaning; they are kept in the order the export wrote them.
- ``M`` → struct of the keys seen anywhere in the export, each typed like an attribute; JSON text instead when
  the ``maps`` option is ``"json"``, when an attribute's maps have more than :data:`MAX_MAP_KEYS` distinct keys
  (maps used as dictionaries keyed by ids), or when every map was empty.
- ``L`` → list of the elements' type when every element has the same type; JSON text when they differ.
- An attribute that is of different types in different items (``N`` in one, ``S`` in another) is a string
  column, reported in a warning: ``S`` as it is, ``N`` as its digits, ``BOOL`` as ``true``/``false``, ``B`` as
  base64, maps, lists and sets as JSON text. Nothing is dropped.
- An attribute missing from an item, or only ever ``NULL``, is null (a string column when never anything else).

JSON text drops the DynamoDB type tags: ``{"city": "Paris", "zip": 75001, "tags": ["a", "b"]}``; numbers keep
their exact digits, binary values are base64 strings, sets are arrays.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

MAPS = ("struct", "json")
MAX_MAP_KEYS = 256
"""An attribute whose maps hold more distinct keys than this is kept as JSON text, not a struct that wide."""
DECIMAL_DIGITS = 38
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
SET_MEMBERS = {"SS": "S", "NS": "N", "BS": "B"}
JSON_TAGS = ("M", "L", "SS", "NS", "BS")
_WIDE = Context(prec=2 * DECIMAL_DIGITS)
_JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


class BadValue(ValueError):
    """A value that is not DynamoDB JSON (``{"S": 5}``, ``{"X": 1}``) or does not fit its attribute's type."""


def split_typed(value: Any) -> tuple[str, Any]:
    """``{"N": "1"}`` → ``("N", "1")``."""
    if type(value) is dict and len(value) == 1:
        for tag, inner in value.items():
            return tag, inner
    raise BadValue(f"expected one typed value such as {{'S': 'text'}}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_number(text: Any) -> Decimal:
    if type(text) is not str:
        raise BadValue(f"a number (N) must be given as a string, got {_short(text)}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BadValue(f"{_short(text)} is not a number") from None
    if not number.is_finite():
        raise BadValue(f"{_short(text)} is not a finite number")
    return number


# ---- inference: what type each attribute has over the whole export -------------------------------------------


class Numbers:
    """What the numbers of one attribute need: int64, a decimal of some scale, or float64."""

    __slots__ = ("digits", "high", "integral", "low", "scale")

    def __init__(self) -> None:
        self.integral = True
        self.low = self.high = 0
        """The range of the whole numbers (0 included: it changes neither the int64 test nor the digits)."""
        self.scale = 0
        """Most digits after the decimal point."""
        self.digits = 0
        """Most digits before the decimal point, of the numbers that are not whole."""

    def add(self, text: Any) -> None:
        if type(text) is not str:
            raise BadValue(f"a number (N) must be given as a string, got {_short(text)}")
        try:
            whole = int(text)
        except ValueError:
            number = parse_number(text)
            if number != number.to_integral_value():
                _, digits, exponent = number.as_tuple()
                assert isinstance(exponent, int)  # finite
                self.integral = False
                self.scale = max(self.scale, -exponent)
                self.digits = max(self.digits, len(digits) + exponent)
                return
            whole = int(number)
        if whole < self.low:
            self.low = whole
        elif whole > self.high:
            self.high = whole

    def merge(self, other: Numbers) -> None:
        self.integral &= other.integral
        self.scale = max(self.scale, other.scale)
        self.digits = max(self.digits, other.digits)
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def arrow_type(self, path: str, warnings: list[str]) -> pa.DataType:
        if self.integral and self.low >= INT64_MIN and self.high <= INT64_MAX:
            return pa.int64()
        whole_digits = len(str(max(-self.low, self.high)))
        needed = max(whole_digits, self.digits) + self.scale
        if needed <= DECIMAL_DIGITS:
            return pa.decimal128(DECIMAL_DIGITS, self.scale)
        warnings.append(
            f"attribute {path}: its numbers need {needed} digits, more than a decimal's {DECIMAL_DIGITS}: read as float64, "
            "which keeps about 16 significant digits"
        )
        return pa.float64()


class Observed:
    """Every type tag seen for one attribute (or map key, or list element), with what its values need."""

    __slots__ = ("elements", "keys", "numbers", "overflow", "tags")

    def __init__(self) -> None:
        self.tags: set[str] = set()
        self.numbers = Numbers()
        self.keys: dict[str, Observed] = {}
        self.overflow: Observed | None = None
        """Set when maps had more than :data:`MAX_MAP_KEYS` keys: their values, checked but not kept apart."""
        self.elements: Observed | None = None

    def add(self, value: Any) -> None:
        try:
            ((tag, inner),) = value.items()
        except (AttributeError, TypeError, ValueError):
            split_typed(value)  # raises, saying what is wrong
            raise
        if tag == "S":
            if type(inner) is not str:
                raise BadValue(f"a string (S) must be a JSON string, got {_short(inner)}")
        elif tag == "N":
            self.numbers.add(inner)
        elif tag == "BOOL" or tag == "NULL":
            if type(inner) is not bool:
                raise BadValue(f"{tag} must be true or false, got {_short(inner)}")
        elif tag == "M":
            if type(inner) is not dict:
                raise BadValue(f"a map (M) must be a JSON object, got {_short(inner)}")
            for key, member in inner.items():
                self._key(key).add(member)
        elif tag == "L":
            if type(inner) is not list:
                raise BadValue(f"a list (L) must be a JSON array, got {_short(inner)}")
            if self.elements is None:
                self.elements = Observed()
            for element in inner:
                self.elements.add(element)
        elif tag == "B":
            _check_binary(inner)
        elif tag in SET_MEMBERS:
            if type(inner) is not list:
                raise BadValue(f"a set ({tag}) must be a JSON array, got {_short(inner)}")
            for member in inner:
                if tag == "NS":
                    self.numbers.add(member)
                elif tag == "SS" and type(member) is not str:
                    raise BadValue(f"a string set (SS) holds {_short(member)}, which is not a string")
                elif tag == "BS":
                    _check_binary(member)
        else:
            raise BadValue(f"unknown DynamoDB type {tag!r} (known: {', '.join(TAGS)})")
        self.tags.add(tag)

    def _key(self, key: str) -> Observed:
        if self.overflow is not None:
            return self.overflow
        found = self.keys.get(key)
        if found is None:
            if len(self.keys) >= MAX_MAP_KEYS:
                self.overflow, self.keys = Observed(), {}
                return self.overflow
            found = self.keys[key] = Observed()
        return found

    def merge(self, other: Observed) -> None:
        self.tags |= other.tags
        self.numbers.merge(other.numbers)
        if other.overflow is not None:
            self.overflow, self.keys = self.overflow or Observed(), {}
        if self.overflow is None:
            for key, observed in other.keys.items():
                self._key(key).merge(observed)
        if other.elements is not None:
            if self.elements is None:
                self.elements = Observed()
            self.elements.merge(other.elements)

    def arrow_type(self, path: str, maps: str, warnings: list[str]) -> pa.DataType:
        """The Arrow type of these values; a choice worth telling (string for mixed types, ...) adds a warning."""
        tags = sorted(self.tags - {"NULL"})
        if not tags:
            return pa.string()
        if len(tags) > 1:
            warnings.append(
                f"attribute {path} is {', '.join(tags)} in different items: read as string (numbers as their "
                "digits, maps, lists and sets as JSON text)"
            )
            return pa.string()
        tag = tags[0]
        if tag in ("S", "SS"):
            return pa.string() if tag == "S" else pa.list_(pa.string())
        if tag in ("B", "BS"):
            return pa.binary() if tag == "B" else pa.list_(pa.binary())
        if tag == "BOOL":
            return pa.bool_()
        if tag in ("N", "NS"):
            number = self.numbers.arrow_type(path, warnings)
            return number if tag == "N" else pa.list_(number)
        if tag == "M":
            if self.overflow is not None:
                warnings.append(
                    f"attribute {path}: its maps have more than {MAX_MAP_KEYS} distinct keys: kept as JSON text"
                )
                return pa.string()
            if maps == "json" or not self.keys:
                return pa.string()
            return pa.struct(
                [pa.field(k, self.keys[k].arrow_type(f"{path}.{k}", maps, warnings)) for k in sorted(self.keys)]
            )
        element_tags = sorted((self.elements.tags if self.elements else set()) - {"NULL"})  # tag == "L"
        if len(element_tags) > 1:
            warnings.append(
                f"attribute {path}: its lists hold {', '.join(element_tags)} values together: kept as JSON text"
            )
            return pa.string()
        if self.elements is None or not element_tags:
            return pa.list_(pa.string())
        return pa.list_(self.elements.arrow_type(f"{path}[]", maps, warnings))


def _check_binary(value: Any) -> None:
    if type(value) is not str and type(value) is not bytes:
        raise BadValue(f"a binary value (B) must be a base64 string, got {_short(value)}")


class Survey:
    """The attributes of many items, observed: :meth:`fields` gives the Arrow fields to read them with."""

    def __init__(self) -> None:
        self.attributes: dict[str, Observed] = {}
        self.n_item = 0

    def add(self, item: dict[str, Any]) -> str | None:
        """Observe one item's attributes; return what is wrong with its first bad value, if one is."""
        self.n_item += 1
        bad = None
        for name, value in item.items():
            observed = self.attributes.get(name)
            if observed is None:
                observed = self.attributes[name] = Observed()
            try:
                observed.add(value)
            except BadValue as exc:
                bad = bad or f"attribute {name!r}: {exc}"
        return bad

    def merge(self, other: Survey) -> None:
        self.n_item += other.n_item
        for name, observed in other.attributes.items():
            if name in self.attributes:
                self.attributes[name].merge(observed)
            else:
                self.attributes[name] = observed

    def fields(self, names: Iterable[str], maps: str, warnings: list[str]) -> list[pa.Field]:
        return [pa.field(n, self.attributes[n].arrow_type(n, maps, warnings)) for n in names]


# ---- decoding: typed values → Python values of the schema's Arrow types -----------------------------------------

Convert = Callable[[Any], Any]


def converter(arrow_type: pa.DataType) -> Convert:
    """A function from one typed value to the Python value ``pa.array`` takes for ``arrow_type`` (``None`` for
    ``NULL``); it raises :class:`BadValue` when the value does not fit."""
    if pa.types.is_string(arrow_type):
        return to_text
    if pa.types.is_int64(arrow_type):
        return to_int
    if pa.types.is_decimal(arrow_type):
        return _to_decimal(arrow_type.scale)
    if pa.types.is_float64(arrow_type):
        return to_float
    if pa.types.is_boolean(arrow_type):
        return to_bool
    if pa.types.is_binary(arrow_type):
        return to_binary
    if pa.types.is_timestamp(arrow_type):
        return to_int  # microseconds since the epoch, given as N
    if pa.types.is_struct(arrow_type):
        return _to_struct({f.name: converter(f.type) for f in arrow_type})
    if pa.types.is_list(arrow_type):
        return _to_list(converter(arrow_type.value_type))
    raise BadValue(f"the manifest's schema has type {arrow_type}, which DynamoDB items are not read as")


def _require_null(value: Any, expected: str) -> None:
    """Return when the value is ``NULL``; raise when it is of another type than ``expected``."""
    tag, inner = split_typed(value)
    if tag == "NULL":
        return
    raise BadValue(f"expected {expected}, got {tag} {_short(inner)}: rebuild the manifest to read its new type")


def to_text(value: Any) -> str | None:
    try:
        text: Any = value["S"]
    except (KeyError, TypeError):
        text = None
    if type(text) is str and len(value) == 1:
        return text
    tag, inner = split_typed(value)
    if tag == "S":
        raise BadValue(f"a string (S) must be a JSON string, got {_short(inner)}")
    if tag == "N":
        parse_number(inner)
        number: str = inner
        return number
    if tag == "NULL":
        return None
    if tag == "BOOL":
        return "true" if to_bool(value) else "false"
    if tag == "B":
        _check_binary(inner)
        return inner if type(inner) is str else base64.b64encode(inner).decode("ascii")
    if tag in JSON_TAGS:
        return to_json(value)
    raise BadValue(f"unknown DynamoDB type {tag!r} (known: {', '.join(TAGS)})")


def _number_text(value: Any) -> str:
    text: Any = value["N"]
    if type(text) is not str:
        raise BadValue(f"a number (N) must be given as a string, got {_short(text)}")
    return text


def to_int(value: Any) -> int | None:
    try:
        text = _number_text(value)
    except (KeyError, TypeError):
        _require_null(value, "a number (N)")
        return None
    try:
        whole = int(text)
    except ValueError:
        number = parse_number(text)
        if number != number.to_integral_value():
            raise BadValue(f"{text} is not a whole number: rebuild the manifest to read it as a decimal") from None
        whole = int(number)
    if not INT64_MIN <= whole <= INT64_MAX:
        raise BadValue(f"{text} does not fit int64: rebuild the manifest to read it as a decimal")
    return whole


def _to_decimal(scale: int) -> Convert:
    def to_decimal(value: Any) -> Decimal | None:
        try:
            text = _number_text(value)
        except (KeyError, TypeError):
            _require_null(value, "a number (N)")
            return None
        number = parse_number(text)
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > scale:  # "5.00" in a decimal(38, 1) column is 5.0; "5.25" does not fit
            try:
                exact = number == number.quantize(Decimal(1).scaleb(-scale), context=_WIDE)
            except InvalidOperation:
                exact = False
            if not exact:
                raise BadValue(f"{text} has more than {scale} decimals: rebuild the manifest")
        if number.adjusted() >= DECIMAL_DIGITS - scale:
            raise BadValue(f"{text} does not fit decimal({DECIMAL_DIGITS}, {scale}): rebuild the manifest")
        return number

    return to_decimal


def to_float(value: Any) -> float | None:
    try:
        text = _number_text(value)
    except (KeyError, TypeError):
        _require_null(value, "a number (N)")
        return None
    return float(parse_number(text))


def to_bool(value: Any) -> bool | None:
    try:
        flag: Any = value["BOOL"]
    except (KeyError, TypeError):
        _require_null(value, "a boolean (BOOL)")
        return None
    if type(flag) is not bool:
        raise BadValue(f"BOOL must be true or false, got {_short(flag)}")
    return flag


def to_binary(value: Any) -> bytes | None:
    try:
        data: Any = value["B"]
    except (KeyError, TypeError):
        _require_null(value, "a binary value (B)")
        return None
    if type(data) is bytes:
        return data
    _check_binary(data)
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise BadValue(f"{_short(data)} is not base64") from None


def _to_struct(fields: dict[str, Convert]) -> Convert:
    def to_struct(value: Any) -> dict[str, Any] | None:
        inner = value.get("M") if type(value) is dict and len(value) == 1 else None
        if type(inner) is not dict:
            if inner is not None:
                raise BadValue(f"a map (M) must be a JSON object, got {_short(inner)}")
            _require_null(value, "a map (M)")
            return None
        out = {}
        for key, member in inner.items():
            convert = fields.get(key)
            if convert is None:
                raise BadValue(f"map key {key!r} is not in the manifest's schema: rebuild the manifest")
            out[key] = convert(member)
        return out

    return to_struct


def _to_list(element: Convert) -> Convert:
    def to_list(value: Any) -> list[Any] | None:
        tag, inner = split_typed(value)
        if type(inner) is list:
            if tag == "L":
                return [element(e) for e in inner]
            if tag == "SS" and element is to_text and all(type(m) is str for m in inner):
                return inner
            member_tag = SET_MEMBERS.get(tag)
            if member_tag is not None:
                return [element({member_tag: m}) for m in inner]
        elif tag == "L" or tag in SET_MEMBERS:
            raise BadValue(f"{tag} must be a JSON array, got {_short(inner)}")
        _require_null(value, "a list (L) or a set (SS, NS, BS)")
        return None

    return to_list


def to_json(value: Any) -> str:
    """A typed value as plain JSON text: type tags dropped, numbers with their exact digits."""
    parts: list[str] = []
    _write_json(value, parts)
    return "".join(parts)


def _write_json(value: Any, out: list[str]) -> None:
    tag, inner = split_typed(value)
    if tag == "M":
        if type(inner) is not dict:
            raise BadValue(f"a map (M) must be a JSON object, got {_short(inner)}")
        out.append("{")
        for index, (key, member) in enumerate(inner.items()):
            out.append(("," if index else "") + json.dumps(key, ensure_ascii=False) + ":")
            _write_json(member, out)
        out.append("}")
    elif tag == "L" or tag in SET_MEMBERS:
        if type(inner) is not list:
            raise BadValue(f"{tag} must be a JSON array, got {_short(inner)}")
        member_tag = SET_MEMBERS.get(tag)
        out.append("[")
        for index, element in enumerate(inner):
            if index:
                out.append(",")
            _write_json(element if member_tag is None else {member_tag: element}, out)
        out.append("]")
    elif tag == "N":
        number = parse_number(inner)
        out.append(inner if _JSON_NUMBER.fullmatch(inner) else str(number))
    elif tag == "NULL":
        out.append("null")
    elif tag in ("S", "BOOL", "B"):
        text = to_text(value)
        out.append(text if tag == "BOOL" and text is not None else json.dumps(text, ensure_ascii=False))
    else:
        raise BadValue(f"unknown DynamoDB type {tag!r} (known: {', '.join(TAGS)})")

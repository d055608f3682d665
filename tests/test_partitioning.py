"""Hive partition paths: how values are escaped into ``key=value`` folders and decoded back.

The escaping follows Hive's ``FileUtils.escapePathName``: control characters and ``"#%'*/:=?\\{[]^`` plus DEL
become ``%XX`` (upper-case hex); everything else, unicode included, is kept as it is. ``None`` and ``""`` are
both written as ``__HIVE_DEFAULT_PARTITION__`` and read back as ``None``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dbsnaplake.api import parse_partition_path, partition_path
from dbsnaplake.frames.partitioning import DEFAULT_PARTITION, escape, format_value, unescape

ESCAPES = [
    ("a/b", "a%2Fb"),
    ("x=y", "x%3Dy"),
    ("50%", "50%25"),
    ("c:d", "c%3Ad"),
    ("q?", "q%3F"),
    ("hash#", "hash%23"),
    ('say "hi"', "say %22hi%22"),
    ("it's", "it%27s"),
    ("a*b", "a%2Ab"),
    ("back\\slash", "back%5Cslash"),
    ("{[^]}", "%7B%5B%5E%5D}"),  # Hive escapes '{' but not '}'
    ("tab\there", "tab%09here"),
    ("new\nline", "new%0Aline"),
    ("\r", "%0D"),
    ("\x01", "%01"),
    ("\x1f", "%1F"),
    ("\x7f", "%7F"),
    ("space here", "space here"),
    ("a+b", "a+b"),
    ("~!@$&()<>|,;", "~!@$&()<>|,;"),
    ("..", ".."),
    ("ünïcödé", "ünïcödé"),
    ("日本語", "日本語"),
    ("emoji 🦆", "emoji 🦆"),
    ("2021-01-02 03:04:05", "2021-01-02 03%3A04%3A05"),
]


@pytest.mark.parametrize(("text", "escaped"), ESCAPES)
def test_escape_like_hive(text: str, escaped: str) -> None:
    assert escape(text) == escaped
    assert unescape(escaped) == text
    assert partition_path(["k"], [text]) == f"k={escaped}"
    assert parse_partition_path(f"k={escaped}") == {"k": text}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, DEFAULT_PARTITION),
        ("", DEFAULT_PARTITION),
        (float("nan"), DEFAULT_PARTITION),
        (True, "true"),
        (False, "false"),
        (2021, "2021"),
        (0, "0"),
        (1.5, "1.5"),
        ("01", "01"),
        (dt.date(2021, 1, 2), "2021-01-02"),
        (dt.datetime(2021, 1, 2, 3, 4, 5), "2021-01-02 03:04:05"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_null_and_empty_string_share_the_default_partition() -> None:
    assert partition_path(["k"], [None]) == "k=__HIVE_DEFAULT_PARTITION__"
    assert partition_path(["k"], [""]) == "k=__HIVE_DEFAULT_PARTITION__"
    assert parse_partition_path("k=__HIVE_DEFAULT_PARTITION__") == {"k": None}


def test_several_keys_and_escaped_keys() -> None:
    path = partition_path(["year", "month", "a/b"], [2021, "01", "x=y"])
    assert path == "year=2021/month=01/a%2Fb=x%3Dy"
    assert parse_partition_path(path) == {"year": "2021", "month": "01", "a/b": "x=y"}
    assert parse_partition_path("/year=2021/month=01/") == {"year": "2021", "month": "01"}
    assert partition_path([], []) == ""
    assert parse_partition_path("") == {}


def test_unescape_keeps_what_is_not_an_escape() -> None:
    assert unescape("100%") == "100%"
    assert unescape("%zz%4") == "%zz%4"
    assert unescape("%2f%2F") == "//"  # lower-case hex decodes too, as in Hive


def test_a_segment_without_equals_sign_is_refused() -> None:
    with pytest.raises(ValueError, match="not a hive partition segment"):
        parse_partition_path("year=2021/oops")


def test_keys_and_values_must_pair_up() -> None:
    with pytest.raises(ValueError):
        partition_path(["a", "b"], [1])


def test_nul_is_escaped_like_every_other_control_character() -> None:
    assert escape("a\x00b") == "a%00b"
    assert "\x00" not in partition_path(["k"], ["\x00"])


# Any text; surrogates cannot reach a path (nor an Arrow string) anyway.
path_characters = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
partition_text = st.text(path_characters, max_size=20)
column_name = st.text(path_characters, min_size=1, max_size=8)


def decoded(value: str | None) -> str | None:
    """What a value reads back as: ``""`` (and the default partition's own name) become ``None``."""
    return None if value in (None, "", DEFAULT_PARTITION) else value


@given(st.lists(st.tuples(column_name, st.none() | partition_text), min_size=1, max_size=4, unique_by=lambda kv: kv[0]))
@example([("k", "..")])
@example([("..", "..")])
@example([("k", "a/../../etc")])
@example([("k", "%2F")])
def test_partition_paths_round_trip(pairs: list[tuple[str, str | None]]) -> None:
    keys = [k for k, _ in pairs]
    values = [v for _, v in pairs]
    path = partition_path(keys, values)
    assert parse_partition_path(path) == {k: decoded(v) for k, v in pairs}


@given(st.lists(st.tuples(column_name, st.none() | partition_text), min_size=1, max_size=4))
@example([("..", ".."), (".", "/")])
def test_a_partition_path_cannot_leave_its_root(pairs: list[tuple[str, str | None]]) -> None:
    path = partition_path([k for k, _ in pairs], [v for _, v in pairs])
    segments = path.split("/")
    assert len(segments) == len(pairs), "a '/' leaked into a segment"
    for segment, (key, _) in zip(segments, pairs, strict=True):
        assert segment not in ("", ".", "..")
        assert segment.startswith(escape(key) + "=")
        assert "=" not in segment[len(escape(key)) + 1 :], "a '=' leaked into a value"
        assert not any(ord(c) < 0x20 or c == "\x7f" for c in segment), "a control character leaked into a path"

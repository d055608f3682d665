"""URIs: ``s3://bucket/key`` or local paths (``file://`` is accepted and stripped). Pure string functions."""

from __future__ import annotations

import os
from collections.abc import Iterable

S3_SCHEME = "s3://"


def normalize_uri(uri: str) -> str:
    """``s3://b/k`` stays as it is; ``file:///x`` and relative paths become absolute local paths."""
    if uri.startswith(("s3://", "S3://", "s3a://")):
        return S3_SCHEME + uri.split("://", 1)[1]
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.abspath(os.path.expanduser(uri))


def normalize_uris(uris: Iterable[str]) -> list[str]:
    """:func:`normalize_uri` over many URIs; those already normal (``s3://`` or a clean absolute path) are kept
    as they are, which makes a million-file manifest cheap."""
    return [
        u if u.startswith(S3_SCHEME) or (u.startswith("/") and "/." not in u and "//" not in u) else normalize_uri(u)
        for u in uris
    ]


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def as_dir(uri: str) -> str:
    """The URI of a folder, always ending with ``/``."""
    uri = normalize_uri(uri)
    return uri if uri.endswith("/") else uri + "/"


def join(base: str, *parts: str) -> str:
    """Join path segments onto a URI: ``join("s3://b/p/", "x", "y.json") == "s3://b/p/x/y.json"``."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def is_within(child: str, parent: str) -> bool:
    """True when ``child`` is ``parent`` or lies below it."""
    return as_dir(child).startswith(as_dir(parent))


def common_folder(uris: list[str]) -> str | None:
    """The deepest folder holding every URI, or ``None`` when that is a bucket or the filesystem root."""
    if not uris:
        return None
    # character by character on purpose, then cut back to a "/": the extremes bound every URI's common prefix
    prefix = os.path.commonprefix([min(uris), max(uris)])  # noqa: RUF071
    folder = prefix[: prefix.rfind("/") + 1]
    too_broad = folder.count("/") <= (3 if is_s3(folder) else 1)  # "s3://bucket/" or "/"
    return None if too_broad else folder


def base_name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0] + "/"



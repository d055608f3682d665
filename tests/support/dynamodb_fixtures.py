"""DynamoDB exports written the way ``ExportTableToPointInTime`` writes them: ``<prefix>/AWSDynamoDB/<id>/`` with
``_started``, ``manifest-summary.json``, ``manifest-files.json``, their ``.checksum`` files and gzip data files
(a full export's in ``<id>/data/``, an incremental export's in the shared ``AWSDynamoDB/data/``). Keys in the
manifests are bucket keys, as in a real export; ``md5Checksum`` is the base64 MD5 of the gzip bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dbsnaplake import storage

EXPORT_TIME = "2024-03-01T12:00:00.000Z"
ACCOUNT, REGION = "123456789012", "eu-west-1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Export:
    folder: str
    """``<root>/<prefix>/AWSDynamoDB/<export-id>/``."""
    data_files: tuple[str, ...]


def write_export(
    root: str,
    files: list[list[dict[str, Any]]],
    *,
    table: str = "Orders",
    export_id: str = "01709294400000-a1b2c3d4",
    prefix: str = "exports/ddb",
    incremental: bool = False,
    ion: bool = False,
    export_time: str = EXPORT_TIME,
    new_and_old_images: bool = True,
) -> Export:
    """Write one export under ``root``. ``files`` holds each data file's items (a full export: the ``Item``
    maps; an incremental export: whole change records). An empty list gives an empty data file."""
    exports = storage.join(root, prefix, "AWSDynamoDB")
    folder = storage.join(exports, export_id)
    data_folder = storage.join(exports, "data") if incremental else storage.join(folder, "data")
    suffix = ".ion.gz" if ion else ".json.gz"
    entries, uris = [], []
    for index, records in enumerate(files):
        lines = [ion_line(r, incremental) if ion else json.dumps(r if incremental else {"Item": r}) for r in records]
        raw = gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)
        name = f"{export_id[-8:]}{index:04d}q5xyz{suffix}"
        uri = storage.join(data_folder, name)
        storage.write_bytes(uri, raw)
        uris.append(uri)
        entries.append(
            {
                "itemCount": len(records),
                "md5Checksum": b64(hashlib.md5(raw).digest()),
                "etag": hashlib.md5(raw).hexdigest(),
                "dataFileS3Key": f"{prefix}/AWSDynamoDB/{uri[len(exports) + 1 :]}",
            }
        )
    files_json = "".join(json.dumps(e) + "\n" for e in entries).encode()
    summary: dict[str, Any] = {
        "version": "2023-08-01" if incremental else "2020-06-30",
        "exportArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/export/{export_id}",
        "startTime": export_time,
        "endTime": export_time,
        "tableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
        "tableId": "12345a12-abcd-123a-ab12-1234abc12345",
        "exportTime": export_time,
        "s3Bucket": "source-bucket",
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{prefix}/AWSDynamoDB/{export_id}/manifest-files.json",
        "billedSizeBytes": 1234,
        "itemCount": sum(len(records) for records in files),
        "outputFormat": "ION" if ion else "DYNAMODB_JSON",
    }
    if incremental:
        summary.update(
            exportType="INCREMENTAL_EXPORT",
            exportFromTime="2024-03-01T11:00:00.000Z",
            exportToTime=export_time,
            outputView="NEW_AND_OLD_IMAGES" if new_and_old_images else "NEW_IMAGE",
        )
    summary_json = json.dumps(summary, indent=2).encode()
    storage.write_bytes(storage.join(folder, "_started"), b"")
    storage.write_bytes(storage.join(folder, "manifest-files.json"), files_json)
    storage.write_bytes(storage.join(folder, "manifest-files.checksum"), hashlib.md5(files_json).hexdigest().encode())
    storage.write_bytes(storage.join(folder, "manifest-summary.json"), summary_json)
    storage.write_bytes(
        storage.join(folder, "manifest-summary.checksum"), hashlib.md5(summary_json).hexdigest().encode()
    )
    return Export(storage.as_dir(folder), tuple(uris))


# ---- Ion text, as DynamoDB writes it: decimals for N, blobs for B, annotated lists for sets -----------------------


def ion_line(record: dict[str, Any], incremental: bool) -> str:
    if not incremental:
        return "$ion_1_0 {Item:" + _ion_image(record) + "}"
    parts = []
    for key, value in record.items():
        if key == "Metadata":
            micros = value["WriteTimestampMicros"]["N"]
            parts.append(f"Metadata:{{WriteTimestampMicros:{micros}}}")
        else:
            parts.append(f"{key}:{_ion_image(value)}")
    return "$ion_1_0 {" + ",".join(parts) + "}"


def _ion_image(image: dict[str, Any]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{_ion(v)}" for k, v in image.items()) + "}"


def _ion(value: dict[str, Any]) -> str:
    ((tag, inner),) = value.items()
    if tag == "S":
        return json.dumps(inner)
    if tag == "N":
        return _ion_decimal(inner)
    if tag == "B":
        return "{{" + str(inner) + "}}"
    if tag == "BOOL":
        return "true" if inner else "false"
    if tag == "NULL":
        return "null"
    if tag == "M":
        return _ion_image(inner)
    if tag == "L":
        return "[" + ",".join(_ion(v) for v in inner) + "]"
    member = {"SS": "S", "NS": "N", "BS": "B"}[tag]
    return f"$dynamodb_{tag}::[" + ",".join(_ion({member: m}) for m in inner) + "]"


def _ion_decimal(text: str) -> str:
    sign, digits, exponent = Decimal(text).as_tuple()
    return ("-" if sign else "") + "".join(map(str, digits)) + f"d{exponent}"


def rewrite_data_file(export: Export, index: int, lines: list[str], *, fix_manifest: bool = True) -> str:
    """Replace data file ``index`` with these lines (gzip); with ``fix_manifest``, ``manifest-files.json`` gets its
    new MD5 and item count, so only the lines are wrong. Returns the data file's URI."""
    uri = export.data_files[index]
    raw = gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)
    storage.write_bytes(uri, raw)
    if fix_manifest:
        files_uri = storage.join(export.folder, "manifest-files.json")
        entries = [json.loads(line) for line in storage.read_bytes(files_uri).splitlines()]
        name = storage.base_name(uri)
        for entry in entries:
            if entry["dataFileS3Key"].endswith("/" + name):
                entry.update(itemCount=len(lines), md5Checksum=b64(hashlib.md5(raw).digest()))
        storage.write_bytes(files_uri, "".join(json.dumps(e) + "\n" for e in entries).encode())
    return uri


def edit_files_manifest(export: Export, index: int, **changes: Any) -> None:
    """Change fields of line ``index`` of ``manifest-files.json`` (``itemCount``, ``md5Checksum``, ...)."""
    files_uri = storage.join(export.folder, "manifest-files.json")
    entries = [json.loads(line) for line in storage.read_bytes(files_uri).splitlines()]
    entries[index].update(changes)
    storage.write_bytes(files_uri, "".join(json.dumps(e) + "\n" for e in entries).encode())

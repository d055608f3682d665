"""Read or write manifests with a real s3manifesto, as the original dbsnaplake's users do (run in a subprocess).

s3manifesto 0.4.1 and 1.0.0 cannot share one environment, so :func:`run_s3manifesto` runs this file with the
folder one version is installed in on ``PYTHONPATH``; it reaches the S3 server through ``AWS_ENDPOINT_URL`` with
boto3, as the library expects. Usage (JSON on stdout)::

    python s3manifesto_script.py read SUMMARY_URI...    each manifest as s3manifesto loads it
    python s3manifesto_script.py write BASE_URI FILES   write BASE_URI/manifest-summary.json listing FILES (S3 URIs)
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_s3manifesto(installed: Path, *args: str) -> Any:
    """Run this script with the s3manifesto installed in ``installed``; its JSON output."""
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def _as_dict(data_file: Any) -> dict[str, Any]:
    """0.4.1 lists plain dicts, 1.0.0 ``DataFile`` records."""
    return dict(data_file) if isinstance(data_file, dict) else dataclasses.asdict(data_file)


def read(summary_uris: list[str]) -> dict[str, Any]:
    from s3manifesto.api import ManifestFile

    client = _s3_client()
    loaded = {}
    for uri in summary_uris:
        manifest = ManifestFile.read(uri_summary=uri, s3_client=client)
        again = ManifestFile.new(uri=manifest.uri, uri_summary=uri, data_file_list=manifest.data_file_list)
        loaded[uri] = {
            "manifest": manifest.uri,
            "files": [_as_dict(f) for f in manifest.data_file_list],
            "size": manifest.size,
            "n_record": manifest.n_record,
            "fingerprint": manifest.fingerprint,
            "details": manifest.details,
            "calculated": {"size": again.size, "n_record": again.n_record},
        }
    return loaded


def write(base: str, file_uris: list[str]) -> dict[str, Any]:
    """A snapshot manifest as the original's users wrote one: sizes and (quoted) ETags from S3, record counts,
    a column and details that dbsnaplake does not use."""
    import polars as pl
    import s3manifesto.api as s3m

    client = _s3_client()
    rows = []
    for uri in file_uris:
        bucket, key = uri[len("s3://") :].split("/", 1)
        head = client.head_object(Bucket=bucket, Key=key)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        n_record = pl.read_parquet(body).height
        rows.append({"uri": uri, "etag": head["ETag"], "size": head["ContentLength"], "n_record": n_record})
    if hasattr(s3m, "DataFile"):  # 1.0.0: records of exactly these four fields
        data_files: list[Any] = [s3m.DataFile(**row) for row in rows]
    else:  # 0.4.1: plain dicts, which may carry more columns
        data_files = [{**row, "exported_by": "pg_dump"} for row in rows]
    manifest = s3m.ManifestFile.new(
        uri=f"{base}/manifest-data.parquet",
        uri_summary=f"{base}/manifest-summary.json",
        data_file_list=data_files,
        details={"database": "shop", "exported_at": "2024-01-01T00:00:00Z", "tables": ["orders"]},
    )
    manifest.write(client)
    return {"summary": manifest.uri_summary, "fingerprint": manifest.fingerprint}


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    output = read(rest) if command == "read" else write(rest[0], rest[1:])
    print(json.dumps(output))

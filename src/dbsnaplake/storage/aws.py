"""Where the AWS environment says AWS is: one reading for every client dbsnaplake makes (obstore for S3, delta-rs,
pyiceberg's FileIO and Glue catalog, boto3's Glue client), so they all reach the same endpoint and region."""

from __future__ import annotations

import os

DEFAULT_REGION = "us-east-1"
"""The region a client is given when the environment names none (obstore and delta-rs need one; boto3 too)."""


def aws_endpoint(service: str) -> str:
    """``AWS_ENDPOINT_URL_<SERVICE>`` (``s3``, ``glue``), else ``AWS_ENDPOINT_URL``; ``""``: AWS's own endpoint."""
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL") or ""


def aws_region() -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``; ``None`` when the environment names none."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")

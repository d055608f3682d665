"""Snapshot sources: recognise what a folder or S3 prefix holds and write a snapshot manifest per table.

Each source module offers ``looks_like(source, listing) -> bool`` and
``build(source, listing, manifest_uri_for, progress) -> SourceBuildResult``.
"""

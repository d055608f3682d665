"""One exception tree. Every message names the bad value and says what to do next."""

from __future__ import annotations


class DbSnapLakeError(Exception):
    """Base of every error dbsnaplake raises on purpose. The CLI prints its message and exits 1."""


class ConfigError(DbSnapLakeError):
    """An option is invalid: a size, a sort key, a transform, overlapping roots."""


class SnapshotError(DbSnapLakeError):
    """The snapshot is unusable: manifest or data file missing, corrupt, of an unknown format."""


class SchemaConflictError(SnapshotError):
    """Two files give one column types that cannot be unified."""


class TransformError(DbSnapLakeError):
    """The user's transform failed or did not produce a column the pipeline needs."""


class StageError(DbSnapLakeError):
    """A stage cannot start because an earlier stage has not finished."""


class ValidationError(DbSnapLakeError):
    """The data lake does not hold what the snapshot held."""


class RecordError(DbSnapLakeError):
    """A stored record (a manifest, a state marker) is of another kind than expected, or unreadable."""


class RunLockedError(DbSnapLakeError):
    """Another run is working in the same staging area."""

"""dbsnaplake: turn a database snapshot export into a compacted, validated, hive-partitioned Parquet lake."""

__version__ = "0.1.0"

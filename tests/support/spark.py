"""A small local Spark (pyspark from PyPI, on the machine's Java 17) for reading lakes back through SQL: one
core, little memory, no UI, an embedded Hive metastore (Derby, in memory) and a warehouse in a temporary folder. Spark here has
no jars beyond pyspark's own (Maven is not reachable), so it reads local Parquet lakes, not s3a:// or Delta/Iceberg.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def java_available() -> bool:
    return shutil.which("java") is not None


@contextlib.contextmanager
def local_spark(folder: Path) -> Iterator[Any]:
    """A SparkSession with Hive support (Hive-format DDL and MSCK REPAIR TABLE), its state under ``folder``."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("dbsnaplake-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "512m")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")  # timestamps come back as naive UTC datetimes
        .config("spark.sql.warehouse.dir", str(folder / "warehouse"))
        .config("spark.sql.codegen.wholeStage", "false")  # a few hundred rows: compiling code costs more than it saves
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.gatherFastStats", "false")  # MSCK REPAIR TABLE: no Spark job to size each partition
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={folder} -Dderby.system.durability=test")
        .config("spark.hadoop.javax.jdo.option.ConnectionURL", "jdbc:derby:memory:metastore;create=true")
        .enableHiveSupport()
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def sql_statements(script: str) -> list[str]:
    """The statements of a SQL script (``;`` at the end of a line ends one), without comment lines."""
    statements = []
    for chunk in script.split(";\n"):
        lines = [line for line in chunk.splitlines() if line.strip() and not line.lstrip().startswith("--")]
        if lines:
            statements.append("\n".join(lines).rstrip(";"))
    return statements

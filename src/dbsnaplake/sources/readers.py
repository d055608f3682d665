"""How the ETL stage reads each source's files: the source readers, by the snapshot manifest's ``reader.format``."""

from __future__ import annotations

from dbsnaplake.frames.readers import SourceReader
from dbsnaplake.sources import folder
from dbsnaplake.sources.dynamodb import export as dynamodb
from dbsnaplake.sources.rds import restore as rds

SOURCE_READERS: dict[str, SourceReader] = {
    folder.READER_FORMAT: folder.read_file,  # a folder of data files, read with the user's CSV options
    dynamodb.ITEMS_JSON: dynamodb.read_file,  # DynamoDB export items, typed
    dynamodb.ITEMS_ION: dynamodb.read_file,
    dynamodb.CHANGES: dynamodb.read_file,  # an incremental export's change records
    rds.READER_FORMAT: rds.read_file,  # RDS / Aurora exports: string-typed columns restored
}

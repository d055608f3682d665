"""Arrow and Polars work on the rows: reading files, schemas and types, sorting, partitioning, the transform,
fingerprints and the Parquet writer. No run state lives here."""

"""RDS/Aurora snapshot exports: the export (export.py) and the restoring of string-typed columns (restore.py)."""

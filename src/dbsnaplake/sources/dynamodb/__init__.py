"""DynamoDB exports: the export (export.py), its typed JSON items (typed_json.py) and Ion items (ion.py)."""

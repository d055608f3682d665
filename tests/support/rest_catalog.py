"""A small Iceberg REST catalog on 127.0.0.1 for tests: the REST protocol's table and namespace endpoints that
pyiceberg's REST client uses, served over HTTP from a thread, backed by pyiceberg's SQL catalog in a SQLite file.

The code under test reaches it as it reaches a user's REST catalog (``--catalog rest+http://127.0.0.1:PORT``):
over HTTP, through pyiceberg's ``RestCatalog``. Only what a publish and a read-back need is served: config,
namespaces (exists, create, list), tables (list, load, staged create, commit).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from pyiceberg.catalog.rest import CreateTableRequest, TableResponse
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.table import CommitTableRequest, CommitTableResponse
from pyiceberg.table.metadata import new_table_metadata

from .s3_server import free_port


class _Named:
    """What the SQL catalog's commit needs of a table: its identifier."""

    def __init__(self, identifier: tuple[str, ...]) -> None:
        self.identifier = identifier

    def name(self) -> tuple[str, ...]:
        return self.identifier


def _handler(catalog: SqlCatalog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def parts(self) -> list[str]:
            return [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")][1:]  # without "v1"

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def answer(self, status: int, payload: Any = None) -> None:
            data = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, kind: str, message: str) -> None:
            self.answer(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_HEAD(self) -> None:
            parts = self.parts()
            if len(parts) == 2 and parts[0] == "namespaces":
                self.answer(204 if catalog.namespace_exists(parts[1]) else 404)
            elif len(parts) == 4:
                self.answer(204 if catalog.table_exists((parts[1], parts[3])) else 404)
            else:
                self.answer(404)

        def do_GET(self) -> None:
            parts = self.parts()
            if parts == ["config"]:
                self.answer(200, {"defaults": {}, "overrides": {}})
            elif parts == ["namespaces"]:
                self.answer(200, {"namespaces": [list(n) for n in catalog.list_namespaces()]})
            elif len(parts) == 3 and parts[2] == "tables":
                names = [{"namespace": list(t[:-1]), "name": t[-1]} for t in catalog.list_tables(parts[1])]
                self.answer(200, {"identifiers": names})
            elif len(parts) == 4:
                try:
                    table = catalog.load_table((parts[1], parts[3]))
                except NoSuchTableError as exc:
                    return self.error(404, "NoSuchTableException", str(exc))
                response = TableResponse.model_validate(
                    {"metadata-location": table.metadata_location, "metadata": table.metadata}
                )
                self.answer(200, response.model_dump_json(by_alias=True).encode())
            else:
                self.error(404, "NotFound", self.path)

        def do_POST(self) -> None:
            parts = self.parts()
            body = self.body()
            if parts == ["namespaces"]:
                namespace = json.loads(body)["namespace"]
                try:
                    catalog.create_namespace(tuple(namespace))
                except NamespaceAlreadyExistsError as exc:
                    return self.error(409, "AlreadyExistsException", str(exc))
                self.answer(200, {"namespace": namespace, "properties": {}})
            elif len(parts) == 3 and parts[2] == "tables":
                request = CreateTableRequest.model_validate_json(body)
                assert request.stage_create and request.location, "only staged creates at a location are served"
                metadata = new_table_metadata(
                    request.table_schema,
                    request.partition_spec,  # type: ignore[arg-type]
                    request.write_order,  # type: ignore[arg-type]
                    request.location,
                    request.properties,
                )
                self.answer(200, TableResponse(metadata=metadata).model_dump_json(by_alias=True).encode())
            elif len(parts) == 4:
                commit = CommitTableRequest.model_validate_json(body)
                try:
                    done = catalog.commit_table(
                        _Named((parts[1], parts[3])),  # type: ignore[arg-type]
                        commit.requirements,
                        commit.updates,
                    )
                except CommitFailedException as exc:
                    return self.error(409, "CommitFailedException", str(exc))
                self.answer(200, CommitTableResponse.model_validate(done).model_dump_json(by_alias=True).encode())
            else:
                self.error(404, "NotFound", self.path)

    return Handler


@contextlib.contextmanager
def rest_catalog_server(sqlite_file: str) -> Iterator[str]:
    """Serve a REST catalog backed by ``sqlite_file`` on a free port; yields its URL (``http://127.0.0.1:PORT``)."""
    catalog = SqlCatalog("rest", uri=f"sqlite:///{sqlite_file}", init_catalog_tables="true")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(catalog))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

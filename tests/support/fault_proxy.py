"""A proxy to put in front of the S3 server of :mod:`tests.support.s3_server` that injects faults (503/500
answers, dropped connections, stalls, 403 signature mismatches).

The code under test reaches it through ``AWS_ENDPOINT_URL``, exactly as it reaches a user's S3; nothing is
patched in-process.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import io
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

FAULT_KINDS = (
    "slowdown_503",
    "internal_500",
    "reset_before",
    "reset_after",
    "reset_mid_body",
    "stall",
    "forbidden_403",
)
_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect")
)
_ERRORS = {
    "slowdown_503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal_500": (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
}


class FaultProxy:
    """A threaded HTTP/1.1 reverse proxy on 127.0.0.1 in front of ``upstream`` that breaks some requests.

    Per request it draws one number from a seeded generator; with the given probabilities it

    - answers ``503 SlowDown`` or ``500 InternalError`` (S3's XML error body) without forwarding;
    - resets the connection (``SO_LINGER`` 0, so the client sees a TCP RST): before reading the request body
      (``reset_before``: the upload is cut, nothing reaches the server), after forwarding but before answering
      (``reset_after``: the write happened, the client sees a failure), or halfway through the response body
      (``reset_mid_body``; a body-less response gets ``reset_after``);
    - stalls the answer ``stall_seconds`` after forwarding (``stall``);
    - answers ``403 SignatureDoesNotMatch`` echoing the request's signature as S3 does (``forbidden_403``).

    With ``only_requests``, only requests whose ``METHOD /bucket/key?query`` contains that string are broken.

    Everything else is forwarded as it came (method, path, query, headers including ``Host``, so a signature
    made for the proxy's address is passed on untouched; chunked request bodies are forwarded with a length).
    ``counts`` holds how many requests arrived (``requests``), were forwarded (``forwarded``) and how many of
    each fault kind were injected; ``signatures`` holds every SigV4 signature the clients sent, so a test can
    look for them in outputs.
    """

    def __init__(
        self,
        upstream: str,
        *,
        error_rate: float = 0.0,
        reset_rate: float = 0.0,
        stall_rate: float = 0.0,
        stall_seconds: float = 1.0,
        forbidden_rate: float = 0.0,
        only_requests: str = "",
        seed: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"fault_proxy needs a plain http:// upstream, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.rates = {"error": error_rate, "reset": reset_rate, "stall": stall_rate, "forbidden": forbidden_rate}
        if sum(self.rates.values()) > 1:
            raise ValueError(f"fault rates add up to more than 1: {self.rates}")
        self.stall_seconds = stall_seconds
        self.only_requests = only_requests
        self.counts: Counter[str] = Counter()
        self.signatures: set[str] = set()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

        handler = type("_Handler", (_FaultProxyHandler,), {"proxy": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.handle_error = self._client_error  # type: ignore[method-assign]
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    def injected(self) -> int:
        """How many faults were injected so far, of every kind."""
        with self._lock:
            return sum(self.counts[kind] for kind in FAULT_KINDS)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def draw(self, request: str) -> str | None:
        """The fault for a request (``reset`` kinds are refined by the handler), or ``None``."""
        with self._lock:
            self.counts["requests"] += 1
            if self.only_requests not in request:
                return None
            r = self._rng.random()
            for name, rate in self.rates.items():
                if r < rate:
                    if name == "error":
                        return "slowdown_503" if self._rng.random() < 0.75 else "internal_500"
                    if name == "reset":
                        return self._rng.choice(("reset_before", "reset_after", "reset_mid_body"))
                    return "stall" if name == "stall" else "forbidden_403"
                r -= rate
            return None

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def saw_signature(self, authorization: str | None) -> None:
        if authorization and "Signature=" in authorization:
            with self._lock:
                self.signatures.add(authorization.rsplit("Signature=", 1)[1].split(",")[0].strip())

    def _client_error(self, request: object, client_address: object) -> None:
        """A client that hung up (a timeout after a stall, a reset): not an error of the proxy."""
        self.count("client_gone")


class _FaultProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection frees its thread after this
    proxy: FaultProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.proxy
        proxy.saw_signature(self.headers.get("Authorization"))
        fault = proxy.draw(f"{self.command} {self.path}")
        if fault == "reset_before":
            proxy.count(fault)
            self._reset()
            return
        body = self._read_body()
        if fault in _ERRORS:
            proxy.count(fault)
            status, reason, code, message = _ERRORS[fault]
            self._answer_error(status, reason, code, message)
            return
        if fault == "forbidden_403":
            proxy.count(fault)
            self._answer_signature_mismatch()
            return
        try:
            status, reason, headers, payload = self._forward(body)
        except (OSError, http.client.HTTPException) as exc:
            proxy.count("upstream_errors")
            self._answer_error(502, "Bad Gateway", "BadGateway", f"upstream: {exc}")
            return
        proxy.count("forwarded")
        if fault == "reset_mid_body" and len(payload) < 2:
            fault = "reset_after"
        if fault == "reset_after":
            proxy.count(fault)
            self._reset()
            return
        if fault == "stall":
            proxy.count(fault)
            time.sleep(proxy.stall_seconds)
        if fault == "reset_mid_body":
            proxy.count(fault)
            self._respond(status, reason, headers, payload[: len(payload) // 2])
            self._reset()
            return
        self._respond(status, reason, headers, payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _respond(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """Status line, headers and body in one write (two small writes meet Nagle and delayed ACKs: 40 ms)."""
        head = [f"{self.protocol_version} {status} {reason}\r\n"] + [f"{k}: {v}\r\n" for k, v in headers]
        self.wfile.write("".join([*head, "\r\n"]).encode("latin-1") + (b"" if self.command == "HEAD" else body))

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, then the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length is not None else None

    def _forward(self, body: bytes | None) -> tuple[int, str, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection(self.proxy.upstream_host, self.proxy.upstream_port, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    upstream.putheader(key, value)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            headers = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in _HOP_BY_HOP and (k.lower() != "content-length" or self.command == "HEAD")
            ]
            if self.command != "HEAD" and response.status not in (204, 304):
                headers.append(("Content-Length", str(len(payload))))
            return response.status, response.reason, headers, payload
        finally:
            upstream.close()

    def _answer_error(self, status: int, reason: str, code: str, message: str, extra: str = "") -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"{extra}<RequestId>FAULTPROXY</RequestId></Error>"
        ).encode()
        self._respond(status, reason, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))], body)

    def _answer_signature_mismatch(self) -> None:
        """What S3 answers to a bad SigV4 signature: the signature provided, the string to sign and the canonical
        request (every signed header, ``x-amz-security-token`` included) echoed back, as text and as bytes."""
        authorization = self.headers.get("Authorization", "")
        fields = dict(part.strip().split("=", 1) for part in authorization.partition(" ")[2].split(",") if "=" in part)
        signed = fields.get("SignedHeaders", "")
        path, _, query = self.path.partition("?")
        payload = self.headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        canonical_headers = "".join(f"{h}:{self.headers.get(h, '')}\n" for h in signed.split(";") if h)
        canonical = f"{self.command}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload}"
        scope = fields.get("Credential", "").partition("/")[2]
        to_sign = f"AWS4-HMAC-SHA256\n{self.headers.get('x-amz-date', '')}\n{scope}\n{'0' * 64}"
        extra = (
            f"<AWSAccessKeyId>{escape(fields.get('Credential', '').partition('/')[0])}</AWSAccessKeyId>"
            f"<StringToSign>{escape(to_sign)}</StringToSign>"
            f"<SignatureProvided>{escape(fields.get('Signature', ''))}</SignatureProvided>"
            f"<StringToSignBytes>{to_sign.encode().hex(' ')}</StringToSignBytes>"
            f"<CanonicalRequest>{escape(canonical)}</CanonicalRequest>"
            f"<CanonicalRequestBytes>{canonical.encode().hex(' ')}</CanonicalRequestBytes>"
        )
        message = "The request signature we calculated does not match the signature you provided."
        self._answer_error(403, "Forbidden", "SignatureDoesNotMatch", message, extra)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST (no FIN): the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket's file descriptor closes only when no file object holds it
        self.connection.close()
        self.wfile = io.BytesIO()
        self.close_connection = True


@contextlib.contextmanager
def fault_proxy(
    upstream: str,
    *,
    error_rate: float = 0.0,
    reset_rate: float = 0.0,
    stall_rate: float = 0.0,
    stall_seconds: float = 1.0,
    forbidden_rate: float = 0.0,
    only_requests: str = "",
    seed: int = 0,
) -> Iterator[FaultProxy]:
    """Run a :class:`FaultProxy` in front of ``upstream`` (an ``http://host:port`` S3 endpoint) for the block;
    point ``AWS_ENDPOINT_URL`` at its ``endpoint`` to send requests through it.

    Example::

        with local_s3_server("bucket") as s3, fault_proxy(s3.endpoint, error_rate=0.05, seed=1) as proxy:
            with aws_environment(AWS_ENDPOINT_URL=proxy.endpoint):
                ...
            assert proxy.injected() > 0
    """
    proxy = FaultProxy(
        upstream,
        error_rate=error_rate,
        reset_rate=reset_rate,
        stall_rate=stall_rate,
        stall_seconds=stall_seconds,
        forbidden_rate=forbidden_rate,
        only_requests=only_requests,
        seed=seed,
    )
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()

"""A thin S3 proxy on 127.0.0.1 that forwards to the local moto server and fails the requests a
plan picks: transient (503 SlowDown, 500 InternalError) or permanent (403 AccessDenied).

    with FaultyS3(s3_settings.endpoint_url, plan) as proxy:
        settings = s3_settings.model_copy(update={"endpoint_url": proxy.endpoint_url})

`plan(method, path, n)` sees every request (n counts from 1) and returns None to forward it, or
(status, code) to answer with that S3 error instead. Requests are forwarded as they came (moto
does not check signatures), so boto3 sees exactly what a real endpoint's faults look like.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

Plan = Callable[[str, str, int], "tuple[int, str] | None"]


class FaultyS3:
    def __init__(self, upstream: str, plan: Plan):
        self.upstream = urlparse(upstream)
        self.plan = plan
        self.faults: list[tuple[str, str, int, str]] = []  # (method, path, status, code) answered
        self._n = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy._n += 1
                    n = proxy._n
                fault = proxy.plan(self.command, self.path, n)
                if fault is not None:
                    status, code = fault
                    with proxy._lock:
                        proxy.faults.append((self.command, self.path, status, code))
                    xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                           f"<Message>injected {code}</Message><RequestId>fault-{n}</RequestId></Error>").encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FaultyS3":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def every(k: int, status: int = 503, code: str = "SlowDown", method: str | None = None) -> Plan:
    """Fails every k-th request (of `method`, when given) once: transient, a retry goes through."""
    seen = {"n": 0}

    def plan(m: str, path: str, n: int):
        if method and m != method:
            return None
        seen["n"] += 1
        return (status, code) if seen["n"] % k == 0 else None

    return plan


def forbid(after: int, method: str = "PUT", path_part: str = "") -> Plan:
    """403 AccessDenied for every `method` request to a path containing `path_part`, from the
    `after`-th such request on: a permanent fault (a policy that denies writes)."""
    seen = {"n": 0}

    def plan(m: str, path: str, n: int):
        if m != method or path_part not in path:
            return None
        seen["n"] += 1
        return (403, "AccessDenied") if seen["n"] > after else None

    return plan

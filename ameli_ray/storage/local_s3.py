"""A local S3-compatible server (moto) on 127.0.0.1, for the embedded default and the tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from ameli_ray.config import S3Settings
from ameli_ray.errors import StorageError

LOOPBACK = "127.0.0.1"
# moto accepts any credentials; fixed ones keep boto3 and pyarrow away from the user's real ones.
LOCAL_KEY = "ameli-local"
LOCAL_SECRET = "ameli-local-secret"


# Ports handed to a server that binds them later: above Ray's worker ports (10002-19999 by
# default) and below the kernel's ephemeral range. A port from `bind(0)` is ephemeral, and between
# our choice and the server's bind another process may take it: a local Ray picks its gRPC ports at
# random between an ephemeral port and 65535 (`Node._get_unused_port`), and once one of them took
# the port a test had chosen for Serve (CI, stop 23: the health check read an HTTP/2 frame).
_PICK_FROM = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not Linux: macOS and Windows start at 49152
        return 49152


def free_port(host: str = LOOPBACK) -> int:
    """A port free on `host` now, outside the ranges other processes are handed ports from."""
    import random

    high = _ephemeral_low() - 1
    for port in random.sample(range(_PICK_FROM, high + 1), min(200, max(high + 1 - _PICK_FROM, 0))):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # an unusual port range: the kernel's choice, race and all
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalS3Server:
    """`moto_server` in a child process on a free loopback port; stopped on exit."""

    def __init__(self, port: int | None = None, startup_timeout_s: float = 30.0):
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def settings(self, base: S3Settings | None = None) -> S3Settings:
        """S3 settings that point at this server."""
        base = base or S3Settings()
        return base.model_copy(
            update=dict(
                endpoint_url=self.endpoint_url,
                access_key_id=SecretStr(LOCAL_KEY),
                secret_access_key=SecretStr(LOCAL_SECRET),
            )
        )

    def start(self) -> "LocalS3Server":
        env = {**os.environ, "AWS_ACCESS_KEY_ID": LOCAL_KEY, "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET}
        # moto logs every request; a pipe nobody reads fills after ~1,000 requests and then blocks
        # the server mid-request, so the log goes to a file (read back only if the start fails).
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # keeps a Ctrl-C in the terminal from killing it before we do
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise StorageError(f"local S3 server exited at start (code {self._proc.returncode}): {err[-500:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise StorageError(f"local S3 server did not answer on {self.endpoint_url} within {self.startup_timeout_s}s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LocalS3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def s3_for_run(s3: S3Settings) -> Iterator[S3Settings]:
    """The S3 settings to use for a run: as configured, or a fresh local server when embedded."""
    if s3.endpoint_url or not s3.embedded:
        yield s3
        return
    with LocalS3Server() as server:
        yield server.settings(s3)

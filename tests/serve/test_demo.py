"""`ameli-ray serve` before Ray: a port it cannot have is refused in seconds, with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from ameli_ray.errors import AmeliError
from ameli_ray.serve.demo import _wait_healthy
from ameli_ray.storage.local_s3 import free_port


def test_a_taken_port_is_refused_before_anything_is_prepared(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**os.environ, "AMELI_CACHE_DIR": str(tmp_path / "cache"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
        start = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "ameli_ray.cli", "serve", "--no-model", "--port", str(port)],
                             capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert f"cannot serve on 127.0.0.1:{port}" in line and "--port" in line
    assert "Traceback" not in out.stderr and time.monotonic() - start < 60
    assert not (tmp_path / "cache" / "serve-demo").exists()  # no catalogue, KB or model was built for nothing


def test_a_port_taken_by_something_that_is_not_http_is_named_not_waited_on():
    """What CI once saw: a gRPC server answering the health check with an HTTP/2 frame."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00@\x00")

    threading.Thread(target=answer, daemon=True).start()
    try:
        start = time.monotonic()
        with pytest.raises(AmeliError, match="something other than Ray Serve answers"):
            _wait_healthy(f"http://127.0.0.1:{server.getsockname()[1]}", timeout_s=60)
        assert time.monotonic() - start < 10
    finally:
        server.close()


def test_ports_chosen_for_later_servers_are_outside_the_ephemeral_range():
    from ameli_ray.storage.local_s3 import _ephemeral_low

    low = _ephemeral_low()
    for _ in range(20):
        port = free_port()
        assert 20000 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # and free

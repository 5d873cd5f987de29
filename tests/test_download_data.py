"""Data download against an HTTP server on loopback, and offline errors."""

import functools
import http.server
import io
import os
import socket
import threading
import zipfile

import pytest

from pipeline import download_data


@pytest.fixture
def http_root(tmp_path):
  """Serve `tmp_path/www` on 127.0.0.1 and yield (directory, base URL)."""
  root = tmp_path / "www"
  root.mkdir()
  handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                              directory=str(root))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield root, f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()
  server.server_close()


def test_movielens_zip_is_unpacked(http_root, tmp_path):
  root, base = http_root
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as archive:
    archive.writestr("ml-latest-small/ratings.csv",
                     "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
  (root / "ml.zip").write_bytes(buffer.getvalue())
  path = download_data.download("movielens-small", str(tmp_path / "data"),
                                url=f"{base}/ml.zip")
  assert os.path.basename(path) == "movielens-small-ratings.csv"
  with open(path, encoding="utf-8") as ratings:
    assert ratings.read().splitlines()[1] == "1,1,4.0,964982703"


def test_plain_file_is_written(http_root, tmp_path):
  root, base = http_root
  (root / "lb.csv").write_text("B001,A1,5.0,1400000000\n")
  path = download_data.download("amazon-luxury-beauty", str(tmp_path / "d"),
                                url=f"{base}/lb.csv")
  with open(path, encoding="utf-8") as ratings:
    assert ratings.read() == "B001,A1,5.0,1400000000\n"


def test_unreachable_server_gives_clear_error(tmp_path):
  # A port that was just free on loopback: the connection is refused, as it
  # would be on a machine without network.
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  with pytest.raises(download_data.DownloadError, match="may be offline"):
    download_data.download("movielens-small", str(tmp_path),
                           url=f"http://127.0.0.1:{port}/ml.zip")
  assert not os.listdir(tmp_path)


def test_not_a_zip_gives_clear_error(http_root, tmp_path):
  root, base = http_root
  (root / "page.html").write_text("<html>moved</html>")
  with pytest.raises(download_data.DownloadError, match="not the expected zip"):
    download_data.download("movielens-small", str(tmp_path),
                           url=f"{base}/page.html")


def test_cli_exit_code_when_offline(tmp_path, capsys):
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  code = download_data.main(["movielens-small", "--dest", str(tmp_path),
                             "--url", f"http://127.0.0.1:{port}/x.zip"])
  assert code == 1
  assert "could not download" in capsys.readouterr().err


def test_missing_file_on_server_names_http_status(http_root, tmp_path):
  _, base = http_root
  with pytest.raises(download_data.DownloadError, match="HTTP 404"):
    download_data.download("movielens-small", str(tmp_path / "d"),
                           url=f"{base}/moved.zip")

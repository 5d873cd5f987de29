"""The code fingerprint that keeps TFX's cache honest."""

from pipeline import code_version


def _package(root, body):
  package = root / "trainer"
  package.mkdir(exist_ok=True)
  (package / "task.py").write_text(body)


def test_same_code_same_version(tmp_path):
  _package(tmp_path, "x = 1\n")
  first = code_version.code_version(str(tmp_path), ["trainer"])
  assert first == code_version.code_version(str(tmp_path), ["trainer"])
  assert len(first) == 16


def test_code_change_changes_version(tmp_path):
  _package(tmp_path, "x = 1\n")
  before = code_version.code_version(str(tmp_path), ["trainer"])
  _package(tmp_path, "x = 2\n")
  assert code_version.code_version(str(tmp_path), ["trainer"]) != before


def test_bytecode_caches_ignored(tmp_path):
  _package(tmp_path, "x = 1\n")
  before = code_version.code_version(str(tmp_path), ["trainer"])
  cache = tmp_path / "trainer" / "__pycache__"
  cache.mkdir()
  (cache / "task.cpython-310.pyc").write_bytes(b"\0")
  assert code_version.code_version(str(tmp_path), ["trainer"]) == before

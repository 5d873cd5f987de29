"""TFX's Pusher with the push destination the pipeline configures.

A failed push must leave earlier versions intact, and a partial copy must
not look like a model to TensorFlow Serving, which loads a version
directory only once it contains saved_model.pb.
"""

import os
import time

import pytest
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import filesystem
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils


def _model(tmp_path, name, broken=False):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / name)
  serving = tmp_path / name / "Format-Serving"
  (serving / "variables").mkdir(parents=True)
  (serving / "saved_model.pb").write_bytes(b"graph " + name.encode())
  (serving / "variables" / "variables.index").write_bytes(b"index")
  if broken:
    # A dangling link: listing shows it, copying it fails half-way through.
    os.symlink(str(tmp_path / "missing"), serving / "variables" / "zz.data")
  return model


def _blessing(tmp_path, blessed=True):
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  blessing.set_int_custom_property("blessed", 1 if blessed else 0)
  return blessing


def _push(tmp_path, model, serving_root, blessed=True, name="push"):
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / name)
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(
          base_directory=str(serving_root)))
  pusher_executor.Executor().Do(
      {"model": [model], "model_blessing": [_blessing(tmp_path, blessed)]},
      {"pushed_model": [pushed]},
      {"push_destination": proto_utils.proto_to_json(destination)})
  return pushed


def test_unblessed_model_not_pushed(tmp_path):
  serving_root = tmp_path / "serving"
  pushed = _push(tmp_path, _model(tmp_path, "m1"), serving_root, blessed=False)
  assert pushed.get_int_custom_property("pushed") == 0
  assert not serving_root.exists()


def test_failed_push_keeps_earlier_version(tmp_path):
  serving_root = tmp_path / "serving"
  _push(tmp_path, _model(tmp_path, "m1"), serving_root, name="push1")
  (first,) = os.listdir(serving_root)
  time.sleep(1.1)  # Versions are Unix seconds.

  with pytest.raises(filesystem.NotFoundError):
    _push(tmp_path, _model(tmp_path, "m2", broken=True), serving_root,
          name="push2")

  assert (serving_root / first / "saved_model.pb").read_bytes() == b"graph m1"
  for version in os.listdir(serving_root):
    if version != first:
      assert not (serving_root / version / "saved_model.pb").exists()

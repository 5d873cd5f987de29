"""Tests that run_fn accepts the custom_config of the Vertex AI Trainer."""

import pytest

from trainer import hyperparameters as hyperparameters_lib
from trainer import task


def _extension_keys():
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  cloud = tfx.extensions.google_cloud_ai_platform
  return {
      cloud.TRAINING_ARGS_KEY, cloud.JOB_ID_KEY, cloud.LABELS_KEY,
      cloud.ENABLE_VERTEX_KEY, cloud.VERTEX_REGION_KEY,
      cloud.ENABLE_UCAIP_KEY, cloud.UCAIP_REGION_KEY,
  }


def _vertex_custom_config(**settings):
  config = hyperparameters_lib.Hyperparameters(**settings).to_custom_config()
  config.update({
      "ai_platform_enable_vertex": True,
      "ai_platform_vertex_region": "europe-west4",
      "ai_platform_training_args": {
          "project": "test-project",
          "job_spec": {"worker_pool_specs": [{}]},
      },
  })
  return config


class _ParsedSettings(Exception):
  """Raised in place of reading the Transform output, after parsing."""


@pytest.fixture(autouse=True)
def keep_op_determinism_off(monkeypatch):
  # run_fn turns on op determinism for the whole process, and TensorFlow
  # 2.16 has no call to turn it off again for the tests that follow.
  monkeypatch.setattr(task.tf.config.experimental, "enable_op_determinism",
                      lambda: None)


def test_cloud_keys_match_extension():
  assert hyperparameters_lib.CLOUD_TRAINER_KEYS == _extension_keys()


def test_without_cloud_keys_keeps_settings():
  config = _vertex_custom_config(epochs=7)
  stripped = hyperparameters_lib.without_cloud_trainer_keys(config)
  assert set(stripped) == set(
      hyperparameters_lib.Hyperparameters().to_custom_config())
  params = hyperparameters_lib.Hyperparameters.from_custom_config(stripped)
  assert params.epochs == 7


def test_without_cloud_keys_keeps_typos():
  config = _vertex_custom_config()
  config["epoch"] = 3
  with pytest.raises(ValueError, match="unknown trainer settings"):
    hyperparameters_lib.Hyperparameters.from_custom_config(
        hyperparameters_lib.without_cloud_trainer_keys(config))


def test_run_fn_accepts_vertex_custom_config(monkeypatch):
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  parsed = {}

  def stop_after_parsing(transform_output):
    parsed["transform_output"] = transform_output
    raise _ParsedSettings()

  # Either model's run_fn reads the Transform output soon after
  # parsing its settings. The replacement stops it there, so the test needs
  # no Transform graph.
  monkeypatch.setattr(task.tft, "TFTransformOutput", stop_after_parsing)
  fn_args = tfx.components.FnArgs(
      custom_config=_vertex_custom_config(epochs=2),
      transform_output="/nonexistent/transform_graph")
  with pytest.raises(_ParsedSettings):
    task.run_fn(fn_args)
  assert parsed["transform_output"] == "/nonexistent/transform_graph"


def test_run_fn_rejects_unknown_setting(monkeypatch):
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(task.tft, "TFTransformOutput", None)
  config = _vertex_custom_config()
  config["embeding_dim"] = 8
  with pytest.raises(ValueError, match="embeding_dim"):
    task.run_fn(tfx.components.FnArgs(custom_config=config))

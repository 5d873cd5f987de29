"""Configuration loading and the Evaluator's gate configuration."""

import json

import pytest
from tensorflow_model_analysis.metrics import metric_specs
from tensorflow_model_analysis.metrics import metric_types

from evaluation import tfma_metrics
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib


def test_defaults_resolve_paths_under_output_root():
  config = config_lib.PipelineConfig(pipeline_name="p", output_root="/r")
  assert config.resolved_examples_dir == "/r/p/examples"
  assert config.resolved_pipeline_root == "/r/p/tfx"
  assert config.resolved_metadata_path == "/r/p/metadata.sqlite"
  assert config.resolved_serving_root == "/r/p/serving"


def test_json_file_overrides_sections(tmp_path):
  path = tmp_path / "c.json"
  path.write_text(json.dumps({
      "pipeline_name": "x", "serving_root": "gs://bucket/serving",
      "examples": {"negatives": 5}, "trainer": {"hidden_units": [8, 4]},
      "evaluation": {"top_k_list": [5, 20], "map_floor": 0.2}}))
  config = config_lib.load(str(path))
  assert config.examples.negatives == 5
  assert config.examples.window == 10
  assert config.trainer.hidden_units == (8, 4)
  assert config.evaluation.top_k_list == (5, 20)
  assert config.resolved_serving_root == "gs://bucket/serving"


@pytest.mark.parametrize("values, message", [
    ({"pipline_name": "typo"}, "pipline_name"),
    ({"trainer": {"epoch": 3}}, "epoch"),
    ({"evaluation": []}, "must be an object"),
])
def test_unknown_settings_rejected(tmp_path, values, message):
  path = tmp_path / "c.json"
  path.write_text(json.dumps(values))
  with pytest.raises(ValueError, match=message):
    config_lib.load(str(path))


def test_invalid_json_names_file(tmp_path):
  path = tmp_path / "broken.json"
  path.write_text("{")
  with pytest.raises(ValueError, match="broken.json"):
    config_lib.load(str(path))


def test_reference_k_is_catalog_over_50():
  settings = config_lib.EvaluationSettings()
  assert settings.cutoffs(12_120) == (10, 50, 100, 242)
  assert settings.gated_k(12_120) == 242
  assert config_lib.EvaluationSettings(gate_k=10).gated_k(12_120) == 10
  assert settings.cutoffs(None) == (10, 50, 100)


def test_trainer_settings_follow_other_sections():
  config = config_lib.from_dict({"examples": {"window": 7, "negatives": 4},
                                 "transform": {"num_oov_buckets": 3}})
  params = config_lib.trainer_settings(config)
  assert params.window == 7
  assert params.negatives_per_positive == 4
  assert params.num_oov_buckets == 3
  assert params.effective_positive_weight == 4.0


def _threshold_keys(eval_config):
  return set(metric_specs.metric_thresholds_from_metrics_specs(
      eval_config.metrics_specs, eval_config))


def test_gate_threshold_matches_metric_key():
  config = config_lib.from_dict({"evaluation": {"map_floor": 0.05}})
  eval_config = pipeline_lib.evaluation_config(config, catalog_size=12_120)
  (computation,) = tfma_metrics.RankingMetrics(
      top_k_list=[10, 242]).computations(model_names=[""])
  produced = set(computation.keys)
  thresholds = _threshold_keys(eval_config)
  value_key = metric_types.MetricKey(name="map@242", example_weighted=None)
  assert value_key in thresholds
  assert value_key in produced
  assert value_key.make_diff_key() in thresholds


def test_gate_has_floor_and_no_regression_bounds():
  config = config_lib.from_dict(
      {"evaluation": {"map_floor": 0.05, "max_map_regression": 0.001}})
  eval_config = pipeline_lib.evaluation_config(config, catalog_size=1000)
  (spec,) = eval_config.metrics_specs
  threshold = spec.thresholds["map@20"]
  assert threshold.value_threshold.lower_bound.value == pytest.approx(0.05)
  assert threshold.change_threshold.absolute.value == pytest.approx(-0.001)


def test_popularity_baseline_raises_floor():
  config = config_lib.from_dict(
      {"evaluation": {"map_floor": 0.01, "min_lift_over_popularity": 0.3}})
  eval_config = pipeline_lib.evaluation_config(config, catalog_size=1000,
                                               popularity_map=0.05)
  threshold = eval_config.metrics_specs[0].thresholds["map@20"]
  assert threshold.value_threshold.lower_bound.value == pytest.approx(0.065)


def test_configured_floor_wins_over_weak_popularity():
  config = config_lib.from_dict({"evaluation": {"map_floor": 0.1}})
  assert config.evaluation.effective_floor(0.01) == 0.1
  assert config.evaluation.effective_floor(None) == 0.1


def test_schema_path_follows_content(tmp_path):
  config = config_lib.from_dict({"pipeline_root": str(tmp_path)})
  from schemas import schema_files
  default = pipeline_lib._schema_file(config, schema_files.EXAMPLES_SCHEMA,
                                      "examples")
  assert default.startswith(str(tmp_path))
  assert schema_files.load_schema(default) == schema_files.schema_for_window(
      schema_files.EXAMPLES_SCHEMA, 10)
  shorter = config_lib.from_dict({"pipeline_root": str(tmp_path),
                                  "examples": {"window": 5}})
  other = pipeline_lib._schema_file(shorter, schema_files.EXAMPLES_SCHEMA,
                                    "examples")
  assert other != default
  assert pipeline_lib._schema_file(
      config, schema_files.EXAMPLES_SCHEMA, "examples") == default

"""The whole pipeline on a real MovieLens sample: Spark job, TFX, gate, push.

Runs LocalDagRunner with a SQLite ML Metadata store, Beam's DirectRunner and
Spark in local mode, three times over the same examples:

1. A model whose learning rate is too small to move its random initial
   weights, gated only by the most-popular baseline: the Evaluator must not
   bless it, because popularity beats it, and nothing is pushed.
2. A trained model gated by a fixed MAP floor: blessed and pushed, and the
   pushed SavedModel's retrieval signature returns items for a user of the
   sample.
3. The same configuration again, twice: the data and the model come from
   the cache, and the second time every component does.
"""

import csv
import json
import os

import pytest
import tensorflow as tf

from pipeline import config as config_lib
from pipeline import run as run_lib
from pipeline import run_report
from schemas import features
from trainer import export
from trainer import search

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOVIELENS = os.path.join(REPO_ROOT, "..", "shared", "data",
                         "movielens-latest-small", "ratings.csv")
# Users 1..150 of MovieLens small: 22,303 ratings of 5,017 movies.
MAX_USER_ID = 150
# Between an untrained model and a trained one. Users of this sample keep
# hundreds of holdout items among a training catalog of about 580, so even a
# random ranking reaches MAP@11 of about 0.035; three epochs reach about
# 0.15.
MAP_FLOOR = 0.07


def _write_sample(path):
  with open(MOVIELENS, newline="", encoding="utf-8") as source, \
      open(path, "w", newline="", encoding="utf-8") as sample:
    reader = csv.reader(source)
    writer = csv.writer(sample)
    writer.writerow(next(reader))
    for row in reader:
      if int(row[0]) <= MAX_USER_ID:
        writer.writerow(row)


def _config(tmp_path, learning_rate, epochs, evaluation):
  config = {
      "pipeline_name": "movielens-sample",
      "ratings_path": str(tmp_path / "ratings.csv"),
      "layout": "movielens",
      "output_root": str(tmp_path / "runs"),
      # The reference protocol gives every sampled user a holdout list, so
      # MAP@K is averaged over 150 users rather than the few that a global
      # time cut leaves in a sample this small.
      "examples": {"holdout": "per_user", "per_user_cut": 10,
                   "num_shards": 2, "driver_memory": "2g"},
      "trainer": {"model_type": "classifier", "embedding_dim": 16,
                  "hidden_units": [32], "epochs": epochs,
                  "batch_size": 256, "learning_rate": learning_rate},
      "evaluation": evaluation,
  }
  path = tmp_path / f"config-{learning_rate}.json"
  path.write_text(json.dumps(config))
  return str(path)


def _serving_versions(tmp_path):
  root = tmp_path / "runs" / "movielens-sample" / "serving"
  return sorted(os.listdir(root)) if root.exists() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  if not os.path.exists(MOVIELENS):
    pytest.skip(f"real data not found at {MOVIELENS}")
  tmp_path = tmp_path_factory.mktemp("pipeline")
  _write_sample(tmp_path / "ratings.csv")
  metadata = str(tmp_path / "runs" / "movielens-sample" / "metadata.sqlite")

  untrained_config = _config(tmp_path, 1e-9, 1, {
      "map_floor": 0.0, "min_lift_over_popularity": 0.1})
  assert run_lib.main(["--config", untrained_config]) == 0
  untrained = run_report.read_report(metadata)
  summary = json.loads((tmp_path / "runs" / "movielens-sample" / "examples" /
                        "summary.json").read_text())
  config = config_lib.load(untrained_config)
  popularity = run_lib.popularity_map(config, summary["catalog_items"])
  gate_metric = f"map@{config.evaluation.gated_k(summary['catalog_items'])}"
  versions_after_untrained = _serving_versions(tmp_path)

  trained_config = _config(tmp_path, 0.003, 3, {
      "map_floor": MAP_FLOOR, "min_lift_over_popularity": None})
  assert run_lib.main(["--config", trained_config]) == 0
  trained = run_report.read_report(metadata)
  versions_after_trained = _serving_versions(tmp_path)

  assert run_lib.main(["--config", trained_config]) == 0
  rerun = run_report.read_report(metadata)
  assert run_lib.main(["--config", trained_config]) == 0
  repeated = run_report.read_report(metadata)
  return {
      "tmp_path": tmp_path,
      "trained_config": trained_config,
      "untrained": untrained,
      "popularity": popularity,
      "gate_metric": gate_metric,
      "trained": trained,
      "rerun": rerun,
      "repeated": repeated,
      "versions_after_untrained": versions_after_untrained,
      "versions_after_trained": versions_after_trained,
  }


def test_untrained_model_not_blessed(runs):
  report = runs["untrained"]
  assert report.metrics["ranked_users"] == MAX_USER_ID
  assert report.metrics[runs["gate_metric"]] < runs["popularity"]
  assert report.blessed is False
  assert report.pushed_dir is None
  assert runs["versions_after_untrained"] == []


def test_trained_model_blessed_and_pushed(runs):
  report = runs["trained"]
  gate_k = [key for key in report.metrics if key.startswith("map@")]
  assert report.blessed is True, report.metrics
  assert len(runs["versions_after_trained"]) == 1
  assert report.pushed_dir.endswith(runs["versions_after_trained"][0])
  for key in gate_k:
    assert 0.0 < report.metrics[key] <= 1.0


def test_artifacts_exist(runs):
  report = runs["trained"]
  assert tf.io.gfile.exists(os.path.join(report.model_dir, "saved_model.pb"))
  assert tf.io.gfile.glob(os.path.join(report.model_run_dir, "*.tsv"))
  assert tf.io.gfile.glob(os.path.join(report.evaluation_dir, "metrics-*"))


def test_pushed_model_retrieves_for_known_user(runs):
  report = runs["trained"]
  loaded = tf.saved_model.load(report.pushed_dir)
  history = [b"1", b"3", b"6"]  # Movies rated by user 1 of MovieLens.
  example = tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[b"1"])),
      features.TOUCHED: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=history)),
  }))
  result = loaded.signatures[export.RETRIEVAL_SIGNATURE](
      examples=tf.constant([example.SerializeToString()]))
  ids = list(result[export.TOP_K_IDS].numpy()[0])
  scores = result[export.TOP_K_SCORES].numpy()[0]
  assert len(ids) == 100
  assert len(set(ids)) == 100
  assert not set(ids) & set(history)
  assert b"" not in ids
  assert all(scores[i] >= scores[i + 1] for i in range(len(scores) - 1))


def test_rerun_reuses_data_and_model(runs):
  # The first re-run after a push finds that push as the latest blessed
  # model, a new Evaluator input, so only the Evaluator and Pusher run.
  states = runs["rerun"].component_states
  for component in ("ImportExampleGen", "HoldoutExampleGen", "StatisticsGen",
                    "ExampleValidator", "Transform", "Trainer"):
    assert states[component] == "CACHED", states
  assert runs["rerun"].blessed is True


def test_unchanged_rerun_fully_cached(runs):
  states = runs["repeated"].component_states
  for component, state in states.items():
    if component != "latest_blessed_model_resolver":
      assert state == "CACHED", states


def test_search_reproduces_the_pipeline_model(runs):
  # The trained configuration's own settings, retrained by the search
  # command on the run's Transform output, must give the Evaluator's MAP@K:
  # training is deterministic and both rank the whole catalog.
  tmp_path = runs["tmp_path"]
  variants = tmp_path / "variants.json"
  variants.write_text(json.dumps({
      "as-pipeline": {},
      "two-tower": {"model_type": "two_tower", "user_id_embedding": False,
                    "epochs": 1},
      "classifier-map-stop": {"epochs": 3, "early_stopping_patience": 1,
                              "early_stopping_metric": "map"}}))
  output = tmp_path / "search"
  assert search.main([
      "--run", str(tmp_path / "runs" / "movielens-sample"),
      "--config", runs["trained_config"], "--variants", str(variants),
      "--output", str(output)]) == 0
  results = json.loads((output / search.RESULTS_FILE).read_text())
  gate_metric = runs["gate_metric"]
  assert results["as-pipeline"]["metrics"][gate_metric] == pytest.approx(
      runs["trained"].metrics[gate_metric], abs=1e-6)
  assert set(results) == {"as-pipeline", "two-tower", "classifier-map-stop",
                          "baseline:most_popular", "baseline:cooccurrence"}
  for result in results.values():
    assert 0.0 < result["metrics"]["recall@50"] <= 1.0


def test_search_refuses_settings_fixed_by_the_run(runs, capsys):
  tmp_path = runs["tmp_path"]
  variants = tmp_path / "fixed.json"
  variants.write_text(json.dumps({"longer": {"window": 20}}))
  assert search.main([
      "--run", str(tmp_path / "runs" / "movielens-sample"),
      "--config", runs["trained_config"], "--variants", str(variants),
      "--output", str(tmp_path / "search-fixed")]) == 2
  assert "['window']" in capsys.readouterr().err


def test_search_checks_every_variant_before_training(runs, capsys):
  tmp_path = runs["tmp_path"]
  variants = tmp_path / "typo.json"
  variants.write_text(json.dumps({"fine": {"epochs": 1},
                                  "typo": {"embeding_dim": 8}}))
  output = tmp_path / "search-typo"
  assert search.main([
      "--run", str(tmp_path / "runs" / "movielens-sample"),
      "--config", runs["trained_config"], "--variants", str(variants),
      "--output", str(output)]) == 2
  assert "variant 'typo'" in capsys.readouterr().err
  assert not (output / "fine").exists()

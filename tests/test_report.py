"""Report: metrics per method and segment, model rankings, written files."""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from baselines import BaselineSettings
from baselines import data
from evaluation import report
from evaluation import segments
from schemas import features

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
LUXURY_BEAUTY_HEAD = (REPO_ROOT / ".." / "shared" / "data" / "amazon" /
                      "luxury_beauty_head5000.csv")


def _bytes_feature(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(
      value=[value.encode("utf-8") for value in values]))


def _int_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def train_example(user, item, target, timestamp=None):
  feature = {
      features.USER_ID: _bytes_feature([user]),
      features.PRODUCT_ID: _bytes_feature([item]),
      features.TOUCHED: _bytes_feature([]),
      features.TARGET: _int_feature([target]),
  }
  if timestamp is not None:
    feature[data.TIMESTAMP] = _int_feature([timestamp])
  return tf.train.Example(features=tf.train.Features(feature=feature))


def holdout_example(user, touched, seen, relevant, history_length):
  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: _bytes_feature([user]),
      features.TOUCHED: _bytes_feature(touched),
      features.LIKED: _bytes_feature(touched),
      features.DISLIKED: _bytes_feature([]),
      features.SEEN: _bytes_feature(seen),
      features.HOLDOUT_ITEMS: _bytes_feature(relevant),
      features.HISTORY_LENGTH: _int_feature([history_length]),
  }))


def write_split(root, split, examples):
  os.makedirs(os.path.join(root, split), exist_ok=True)
  path = os.path.join(root, split, "part-00000.tfrecord.gz")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for example in examples:
      writer.write(example.SerializeToString())


def write_examples_dir(root, with_timestamps=False):
  """Write a tiny Spark-job-shaped output: 4 training items, 3 users."""
  positives = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"),
               ("u3", "a"), ("u3", "b"), ("u3", "d")]
  train = [train_example(user, item, 1, 1000 + i if with_timestamps else None)
           for i, (user, item) in enumerate(positives)]
  # An item that occurs only as a negative must not enter the catalog.
  train.append(train_example("u1", "zz_negative_only", 0))
  write_split(root, features.TRAIN_SPLIT, train)
  write_split(root, features.EVAL_SPLIT, [train_example("u1", "c", 1)])
  write_split(root, features.HOLDOUT_SPLIT, [
      holdout_example("u1", ["a", "b"], ["a", "b"], ["c"], 2),
      holdout_example("u2", ["c"], ["a", "c"], ["b", "new_item"], 12),
      holdout_example("u9", ["d"], ["d"], ["a"], 1),
  ])
  with open(os.path.join(root, data.SUMMARY_FILE), "w",
            encoding="utf-8") as summary:
    json.dump({"catalog_items": 4, "config": {"holdout": "global_time"}},
              summary)
  return str(root)


def test_read_interactions_keeps_positives(tmp_path):
  interactions = data.read_interactions(write_examples_dir(tmp_path))
  assert interactions.items.size == 7
  assert interactions.catalog() == ["a", "b", "c", "d"]
  assert interactions.timestamps is None


def test_read_interactions_with_timestamps(tmp_path):
  interactions = data.read_interactions(
      write_examples_dir(tmp_path, with_timestamps=True))
  assert interactions.timestamps.tolist() == list(range(1000, 1007))


def test_read_interactions_adds_eval_split(tmp_path):
  interactions = data.read_interactions(
      write_examples_dir(tmp_path),
      splits=(features.TRAIN_SPLIT, features.EVAL_SPLIT))
  assert interactions.items.size == 8


def test_read_interactions_missing_split(tmp_path):
  with pytest.raises(FileNotFoundError, match="no part-"):
    data.read_interactions(str(tmp_path))


def test_read_holdout_fields(tmp_path):
  users = data.read_holdout(write_examples_dir(tmp_path))
  assert [user.user_id for user in users] == ["u1", "u2", "u9"]
  assert users[1].seen == ["a", "c"]
  assert users[1].relevant == ["b", "new_item"]
  assert users[1].history_length == 12


@pytest.mark.parametrize("length,segment", [
    (1, "1"), (2, "2-4"), (4, "2-4"), (5, "5-9"), (9, "5-9"), (10, "10+"),
    (5000, "10+")])
def test_segment_boundaries(length, segment):
  assert segments.segment_of(length) == segment


def test_segment_rejects_zero_history():
  with pytest.raises(ValueError, match="at least 1"):
    segments.segment_of(0)


def _users():
  return [
      data.HoldoutExample("short", ["a"], [], [], ["a"], ["b"], 1),
      data.HoldoutExample("long", ["a"], [], [], ["a"], ["c", "d"], 10),
  ]


def test_evaluate_rankings_overall_and_segments():
  rankings = {"short": ["b", "c"], "long": ["b", "c"]}
  result = report.evaluate_rankings(rankings, _users(), ks=[1, 2],
                                    catalog_size=4)
  overall = result[report.OVERALL]
  # short: hit at 1. long: hit at 2 of |R| = 2, so AP@2 = (1/2) / 2.
  assert overall["map@1"] == pytest.approx(0.5)
  assert overall["map@2"] == pytest.approx((1.0 + 0.25) / 2)
  assert overall["recall@2"] == pytest.approx((1.0 + 0.5) / 2)
  assert overall["hit_rate@2"] == 1.0
  assert overall[report.USERS] == 2
  assert result["1"]["map@2"] == 1.0
  assert result["10+"]["recall@2"] == pytest.approx(0.5)
  assert result["2-4"] == {report.USERS: 0}


def test_coverage_counts_distinct_items():
  rankings = {"short": ["b", "c"], "long": ["d", "c"]}
  result = report.evaluate_rankings(rankings, _users(), ks=[1, 2],
                                    catalog_size=4)
  # Top 1: {b, d}; top 2: {b, c, d}.
  assert result[report.OVERALL]["coverage@1"] == pytest.approx(2 / 4)
  assert result[report.OVERALL]["coverage@2"] == pytest.approx(3 / 4)
  assert result["1"]["coverage@2"] == pytest.approx(2 / 4)


def test_evaluate_rankings_rejects_missing_user():
  with pytest.raises(ValueError, match="no ranked list"):
    report.evaluate_rankings({"short": ["b"]}, _users(), ks=[1],
                             catalog_size=4)


def test_write_report_files_parse(tmp_path):
  built = report.build_report(
      {"first": {"short": ["b"], "long": ["c"]},
       "second": {"short": ["c"], "long": ["b"]}},
      _users(), ks=[1], catalog_size=4, details={"note": "test"})
  paths = report.write_report(built, str(tmp_path))
  with open(paths["json"], encoding="utf-8") as json_file:
    loaded = json.load(json_file)
  assert loaded["methods"]["first"]["overall"]["map@1"] == 1.0
  assert loaded["methods"]["second"]["overall"]["map@1"] == 0.0
  markdown = pathlib.Path(paths["markdown"]).read_text(encoding="utf-8")
  assert "| 1 | first | 1.0000 | 1.0000 |" in markdown
  assert "No holdout user falls in this group." in markdown
  with open(paths["plot"], "rb") as plot:
    assert plot.read(8) == b"\x89PNG\r\n\x1a\n"


class _FixedRanker(tf.Module):
  """Stands in for the exported model: every user gets the same ids."""

  def __init__(self, ids):
    super().__init__()
    self.ids = tf.constant([ids])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name="examples")])
  def rank(self, serialized):
    batch = tf.shape(serialized)[0]
    return {report.TOP_K_IDS: tf.tile(self.ids, [batch, 1])}


def save_fixed_model(path, ids):
  module = _FixedRanker(ids)
  tf.saved_model.save(module, path, signatures={
      report.EVALUATION_SIGNATURE: module.rank.get_concrete_function()})
  return path


def test_model_rankings_drop_padding(tmp_path):
  model_dir = save_fixed_model(str(tmp_path / "model"), [b"c", b"b", b""])
  records = data.read_holdout_records(write_examples_dir(tmp_path / "ex"))
  rankings = report.model_rankings(model_dir, records, min_k=3, batch_size=2)
  assert rankings == {"u1": ["c", "b"], "u2": ["c", "b"], "u9": ["c", "b"]}


def test_model_rankings_reject_short_lists(tmp_path):
  model_dir = save_fixed_model(str(tmp_path / "model"), [b"c", b"b"])
  records = data.read_holdout_records(write_examples_dir(tmp_path / "ex"))
  with pytest.raises(ValueError, match="returns 2 ids per user"):
    report.model_rankings(model_dir, records, min_k=3)


def test_evaluate_and_write_with_model(tmp_path):
  examples_dir = write_examples_dir(tmp_path / "ex")
  model_dir = save_fixed_model(str(tmp_path / "model"), [b"c", b"b", b""])
  settings = BaselineSettings(methods=("most_popular", "recent_popular",
                                       "cooccurrence"))
  result = report.evaluate_and_write(examples_dir, str(tmp_path / "report"),
                                     ks=[1, 3], settings=settings,
                                     saved_model_dir=model_dir)
  methods = result["methods"]
  assert sorted(methods) == ["cooccurrence", "model", "most_popular"]
  assert "timestamp" in result["details"]["skipped"]["recent_popular"]
  # Popularity: a 3, b 2, c 1, d 1. u1 has seen a, b, so gets c then d: hit
  # on c. u2 has seen a, c: gets b: hit. u9 has seen d: gets a: hit.
  assert methods["most_popular"]["overall"]["map@1"] == 1.0
  assert methods["model"]["overall"]["hit_rate@1"] == pytest.approx(1 / 3)
  for name in ("json", "markdown", "plot"):
    assert os.path.exists(tmp_path / "report" / {
        "json": report.JSON_FILE, "markdown": report.MARKDOWN_FILE,
        "plot": report.PLOT_FILE}[name])


def test_evaluate_and_write_runs_recent_popular(tmp_path):
  examples_dir = write_examples_dir(tmp_path / "ex", with_timestamps=True)
  settings = BaselineSettings(methods=("recent_popular",))
  result = report.evaluate_and_write(examples_dir, str(tmp_path / "report"),
                                     ks=[1], settings=settings)
  assert "recent_popular" in result["methods"]
  assert result["details"]["skipped"] == {}


@pytest.mark.skipif(not LUXURY_BEAUTY_HEAD.exists(),
                    reason=f"real ratings file {LUXURY_BEAUTY_HEAD} is absent")
def test_baselines_on_real_ratings(spark, tmp_path):
  from spark import job  # pylint: disable=g-import-not-at-top
  from spark.config import ExampleJobConfig  # pylint: disable=g-import-not-at-top

  examples_dir = str(tmp_path / "examples")
  summary = job.run_job(ExampleJobConfig(
      input_path=str(LUXURY_BEAUTY_HEAD), output_path=examples_dir,
      layout="amazon", num_shards=2), spark)
  settings = BaselineSettings(methods=("most_popular", "cooccurrence"))
  result = report.evaluate_and_write(examples_dir, str(tmp_path / "report"),
                                     settings=settings)
  assert result["catalog_size"] == summary["catalog_items"]
  assert result["holdout_users"] == summary["holdout_users"]
  overall = result["methods"]["most_popular"]["overall"]
  assert overall[report.USERS] == summary["holdout_users"]
  assert 0.0 <= overall["map@10"] <= 1.0
  assert np.isclose(sum(result["methods"]["cooccurrence"][name][report.USERS]
                        for name in segments.SEGMENT_NAMES),
                    summary["holdout_users"])

"""Read the Spark job's TFRecord output into arrays for the baselines.

Baselines must learn from exactly the events the model learns from, so they
read the same `train/` shards instead of the ratings file. Only positives
(`target` == 1) are used: sampled negatives are an artefact of the model's
binary training objective, not observed behaviour.
"""

import dataclasses
import glob
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from schemas import features

SUMMARY_FILE = "summary.json"
# Optional int64 feature with the event time in Unix seconds. The Spark job
# does not write it yet; recent popularity needs it on train positives.
TIMESTAMP = "timestamp"
# Records parsed per batch; bounds memory, not results.
_PARSE_BATCH = 8192


@dataclasses.dataclass(frozen=True)
class Interactions:
  """Positive events of the training period, one entry per event.

  Attributes:
    users: User id of each event, as str.
    items: Product id of each event, as str.
    timestamps: Unix seconds of each event, or None when the examples carry
      no `timestamp` feature.
  """

  users: np.ndarray
  items: np.ndarray
  timestamps: Optional[np.ndarray] = None

  def catalog(self) -> List[str]:
    """Return the distinct items, sorted by id, as the ranking catalog.

    The Spark job's catalog (distinct items of the train split) is built
    the same way, so its size matches `catalog_items` in summary.json.
    """
    return sorted(set(self.items.tolist()))


@dataclasses.dataclass(frozen=True)
class HoldoutExample:
  """One holdout user at the holdout cut; ids as str."""

  user_id: str
  touched: List[str]
  liked: List[str]
  disliked: List[str]
  seen: List[str]
  relevant: List[str]
  history_length: int


def shard_paths(examples_dir: str, split: str) -> List[str]:
  """Return the sorted `part-*` shard files of one split.

  Raises:
    FileNotFoundError: The split has no shard files.
  """
  paths = sorted(glob.glob(os.path.join(examples_dir, split, "part-*")))
  if not paths:
    raise FileNotFoundError(
        f"no part-* files in {os.path.join(examples_dir, split)}; pass the "
        "output directory of spark.make_examples")
  return paths


def read_summary(examples_dir: str) -> Dict[str, object]:
  """Return the Spark job's summary.json of `examples_dir`."""
  path = os.path.join(examples_dir, SUMMARY_FILE)
  with open(path, encoding="utf-8") as summary_file:
    return json.load(summary_file)


def _decode(values) -> np.ndarray:
  return np.array([value.decode("utf-8") for value in values], dtype=object)


def read_interactions(examples_dir: str,
                      splits: Sequence[str] = (features.TRAIN_SPLIT,)
                      ) -> Interactions:
  """Read the positives (target == 1) of the given splits.

  Args:
    examples_dir: Output directory of the Spark job.
    splits: Splits to read. The model's vocabulary and weights come from
      `train` only, which is why that is the default.

  Returns:
    The positive events. `timestamps` is set only when every positive has a
    `timestamp` feature.
  """
  # Imported here so that modules that only rank do not load TensorFlow.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  spec = {
      features.USER_ID: tf.io.FixedLenFeature([], tf.string),
      features.PRODUCT_ID: tf.io.FixedLenFeature([], tf.string),
      features.TARGET: tf.io.FixedLenFeature([], tf.int64),
      TIMESTAMP: tf.io.VarLenFeature(tf.int64),
  }
  paths = [path for split in splits for path in shard_paths(examples_dir,
                                                            split)]

  def parse(batch):
    parsed = tf.io.parse_example(batch, spec)
    # First timestamp of each example, -1 where it has none.
    dense = tf.sparse.to_dense(parsed[TIMESTAMP], default_value=-1)
    padding = -tf.ones_like(parsed[features.TARGET])[:, tf.newaxis]
    parsed[TIMESTAMP] = tf.concat([dense, padding], axis=1)[:, 0]
    return parsed

  dataset = (tf.data.TFRecordDataset(paths, compression_type="GZIP")
             .batch(_PARSE_BATCH)
             .map(parse))
  users, items, timestamps = [], [], []
  missing_timestamps = 0
  for batch in dataset.as_numpy_iterator():
    positive = batch[features.TARGET] == 1
    users.append(batch[features.USER_ID][positive])
    items.append(batch[features.PRODUCT_ID][positive])
    batch_timestamps = batch[TIMESTAMP][positive]
    missing_timestamps += int(np.sum(batch_timestamps < 0))
    timestamps.append(batch_timestamps)
  if not users:
    return Interactions(np.array([], dtype=object), np.array([], dtype=object))
  all_timestamps = np.concatenate(timestamps)
  return Interactions(
      users=_decode(np.concatenate(users)),
      items=_decode(np.concatenate(items)),
      timestamps=all_timestamps if missing_timestamps == 0 else None)


def _bytes_list(example, name: str) -> List[str]:
  return [value.decode("utf-8")
          for value in example.features.feature[name].bytes_list.value]


def parse_holdout(serialized: bytes) -> HoldoutExample:
  """Parse one serialized holdout `tf.train.Example`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  example = tf.train.Example.FromString(serialized)
  user = _bytes_list(example, features.USER_ID)
  lengths = example.features.feature[features.HISTORY_LENGTH].int64_list.value
  return HoldoutExample(
      user_id=user[0] if user else "",
      touched=_bytes_list(example, features.TOUCHED),
      liked=_bytes_list(example, features.LIKED),
      disliked=_bytes_list(example, features.DISLIKED),
      seen=_bytes_list(example, features.SEEN),
      relevant=_bytes_list(example, features.HOLDOUT_ITEMS),
      history_length=int(lengths[0]) if lengths else 0)


def read_holdout_records(examples_dir: str) -> List[bytes]:
  """Return the serialized holdout examples, in shard order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  dataset = tf.data.TFRecordDataset(
      shard_paths(examples_dir, features.HOLDOUT_SPLIT),
      compression_type="GZIP")
  return [record for record in dataset.as_numpy_iterator()]


def read_holdout(examples_dir: str) -> List[HoldoutExample]:
  """Read every holdout user of `examples_dir`, in shard order."""
  return [parse_holdout(record) for record in read_holdout_records(examples_dir)]

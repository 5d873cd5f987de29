"""MAP@K validation over the whole catalog (trainer/validation.py)."""

import numpy as np
import pytest
import tensorflow as tf

from schemas import features
from trainer import hyperparameters as hyperparameters_lib
from trainer import validation

NUM_ROWS = 12  # padding, vocabulary rows 1..10, one OOV bucket
VOCABULARY_SIZE = 10


def _batch(positives, touched):
  batch = {features.PRODUCT_ID: tf.constant(positives, tf.int64)}
  batch[features.TOUCHED] = tf.constant(touched, tf.int64)
  for name in (features.LIKED, features.DISLIKED):
    batch[name] = tf.zeros_like(batch[features.TOUCHED])
  return batch


def _fixed_search(rows):
  """Return a search that returns `rows` for any input."""
  def search(batch, excluded, k):
    del batch, excluded
    found = tf.constant(rows, tf.int64)[:, :k]
    return tf.zeros(tf.shape(found), tf.float32), found
  return search


def test_average_precision_is_reciprocal_rank():
  batch = _batch(positives=[3, 8, 4], touched=[[0, 0], [0, 0], [0, 0]])
  search = _fixed_search([[5, 3, 7], [2, 9, 4], [4, 1, 2]])
  total, count = validation.average_precision_of_positives(
      search, batch, NUM_ROWS, VOCABULARY_SIZE, k=3)
  # Ranks 2, missing, 1.
  assert float(count) == 3.0
  assert float(total) == pytest.approx(0.5 + 0.0 + 1.0)


def test_unrankable_positives_left_out():
  # Row 6 is in its own history; row 11 is the out-of-vocabulary bucket.
  batch = _batch(positives=[6, 11, 2], touched=[[6, 0], [0, 0], [0, 0]])
  search = _fixed_search([[6, 1, 3], [11, 1, 3], [1, 2, 3]])
  total, count = validation.average_precision_of_positives(
      search, batch, NUM_ROWS, VOCABULARY_SIZE, k=3)
  assert float(count) == 1.0
  assert float(total) == pytest.approx(0.5)


def test_callback_logs_mean_over_batches():
  positives = tf.data.Dataset.from_tensor_slices(
      _batch(positives=[3, 8, 4], touched=[[0, 0]] * 3)).batch(2)
  rows = tf.constant([[5, 3, 7], [2, 9, 4], [4, 1, 2]], tf.int64)

  def search(batch, excluded, k):
    del excluded
    # Look the rows up by the positive, so batch boundaries do not matter.
    index = tf.cast(tf.equal(batch[features.PRODUCT_ID][:, None],
                             tf.constant([[3, 8, 4]], tf.int64)), tf.int64)
    found = tf.gather(rows, tf.argmax(index, axis=1))[:, :k]
    return tf.zeros(tf.shape(found)), found

  callback = validation.CatalogMapCallback(
      positives, search, NUM_ROWS, VOCABULARY_SIZE, k=3)
  logs = {}
  callback.on_epoch_end(0, logs)
  assert logs[validation.metric_name(3)] == pytest.approx(1.5 / 3)


def test_positive_batches_keep_only_positives():
  data = tf.data.Dataset.from_tensor_slices((
      {features.PRODUCT_ID: tf.constant([1, 2, 3, 4, 5], tf.int64)},
      tf.constant([1, 0, 1, 0, 1], tf.int64),
      tf.ones([5]))).batch(2)
  batches = list(validation.positive_batches(data, batch_size=2))
  values = np.concatenate([b[features.PRODUCT_ID].numpy() for b in batches])
  np.testing.assert_array_equal(values, [1, 3, 5])
  assert [len(b[features.PRODUCT_ID]) for b in batches] == [2, 1]


def test_unknown_early_stopping_metric_rejected():
  with pytest.raises(ValueError, match="early_stopping_metric"):
    hyperparameters_lib.Hyperparameters(early_stopping_metric="auc")


def test_callback_without_rankable_positives_logs_zero():
  positives = tf.data.Dataset.from_tensor_slices(
      _batch(positives=[11], touched=[[0, 0]])).batch(1)
  callback = validation.CatalogMapCallback(
      positives, _fixed_search([[11, 1, 2]]), NUM_ROWS, VOCABULARY_SIZE, k=3)
  assert callback.evaluate() == 0.0

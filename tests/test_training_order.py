"""The training order depends on the examples and the seed, not the files."""

import numpy as np
import tensorflow as tf

from trainer import task


def _batches(order):
  users = np.array([5, 3, 9, 1, 7, 3], dtype=np.int64)[order]
  histories = np.array([[1, 0], [2, 2], [0, 0], [4, 1], [1, 1], [2, 1]],
                       dtype=np.int64)[order]
  labels = np.array([1, 0, 1, 0, 1, 1], dtype=np.int64)[order]
  return tf.data.Dataset.from_tensor_slices(
      ({"user_id": users, "touched_product_id": histories}, labels)).batch(4)


def _sequence(dataset):
  rows = []
  for features, labels in dataset:
    for user, history, label in zip(features["user_id"].numpy(),
                                    features["touched_product_id"].numpy(),
                                    labels.numpy()):
      rows.append((int(user), tuple(history.tolist()), int(label)))
  return rows


def test_file_order_does_not_change_training_order():
  first = task._content_ordered(_batches([0, 1, 2, 3, 4, 5]), seed=7,
                                batch_size=2)
  second = task._content_ordered(_batches([5, 3, 1, 4, 0, 2]), seed=7,
                                 batch_size=2)
  assert _sequence(first) == _sequence(second)


def test_every_example_kept_once():
  ordered = _sequence(task._content_ordered(_batches(list(range(6))), seed=7,
                                            batch_size=4))
  original = _sequence(_batches(list(range(6))))
  assert sorted(ordered) == sorted(original)


def test_seed_changes_order():
  one = _sequence(task._content_ordered(_batches(list(range(6))), seed=1,
                                        batch_size=6))
  two = _sequence(task._content_ordered(_batches(list(range(6))), seed=2,
                                        batch_size=6))
  assert one != two

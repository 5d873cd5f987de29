"""Transform tests: real tf.Transform analysis on Beam's DirectRunner."""

import numpy as np
import pytest

from schemas import features
from tests.transform_fixtures import analyze_and_transform
from tests.transform_fixtures import row
from transform import preprocessing

WINDOW = 3


# Training split: item counts are p1 x5, p2 x3, p3 x2, p4 x1 over all four
# product features, so the vocabulary order is p1, p2, p3, p4.
# Timestamps span 1,000 s, from 1,000,000,000 to 1,000,001,000.
TRAIN_ROWS = [
    row(b"u1", b"p1", timestamp=1_000_000_000),
    row(b"u1", b"p2", touched=[b"p1"], liked=[b"p1"], timestamp=1_000_000_250),
    row(b"u1", b"p3", touched=[b"p1", b"p2"], disliked=[b"p2"],
        timestamp=1_000_000_500),
    row(b"u2", b"p1", target=0, timestamp=1_000_000_500),
    row(b"u2", b"p4", touched=[b"p3", b"p2", b"p1"], timestamp=1_000_001_000),
]
# Evaluation split: "p_new" and "u_new" appear only here, 100 s after the
# newest training event.
EVAL_ROWS = [
    row(b"u_new", b"p_new", touched=[b"p4", b"p3", b"p2", b"p1", b"p_new"],
        timestamp=1_000_001_100),
]


@pytest.fixture(scope="module")
def transformed():
  return analyze_and_transform(TRAIN_ROWS, EVAL_ROWS, WINDOW)


def test_product_vocabulary_is_shared_and_train_only(transformed):
  _, _, output = transformed
  vocabulary = output.vocabulary_by_name(preprocessing.PRODUCT_VOCABULARY)
  assert vocabulary == [b"p1", b"p2", b"p3", b"p4"]


def test_user_vocabulary_excludes_eval_users(transformed):
  _, _, output = transformed
  vocabulary = output.vocabulary_by_name(preprocessing.USER_VOCABULARY)
  assert sorted(vocabulary) == [b"u1", b"u2"]


def test_ids_start_at_one(transformed):
  train_out, _, _ = transformed
  products = [int(row[features.PRODUCT_ID]) for row in train_out]
  # p1 -> 1, p2 -> 2, p3 -> 3, p1 -> 1, p4 -> 4
  assert products == [1, 2, 3, 1, 4]


def test_history_padded_with_zero(transformed):
  train_out, _, _ = transformed
  np.testing.assert_array_equal(train_out[0][features.TOUCHED], [0, 0, 0])
  np.testing.assert_array_equal(train_out[1][features.TOUCHED], [1, 0, 0])
  np.testing.assert_array_equal(train_out[1][features.LIKED], [1, 0, 0])
  np.testing.assert_array_equal(train_out[2][features.DISLIKED], [2, 0, 0])
  np.testing.assert_array_equal(train_out[4][features.TOUCHED], [3, 2, 1])


def test_history_keeps_most_recent(transformed):
  _, eval_out, _ = transformed
  # Five items, window 3: the oldest two (p4, p3) are dropped; the unknown
  # "p_new" goes to the single out-of-vocabulary bucket, index V + 1 = 5.
  np.testing.assert_array_equal(eval_out[0][features.TOUCHED], [2, 1, 5])


def test_unknown_ids_go_to_oov_bucket(transformed):
  _, eval_out, _ = transformed
  assert int(eval_out[0][features.PRODUCT_ID]) == 5
  assert int(eval_out[0][features.USER_ID]) == 3


def test_no_id_maps_to_padding(transformed):
  train_out, eval_out, _ = transformed
  for row in train_out + eval_out:
    assert int(row[features.PRODUCT_ID]) != preprocessing.PADDING_INDEX
    assert int(row[features.USER_ID]) != preprocessing.PADDING_INDEX


def test_example_age_is_fraction_of_train_period(transformed):
  train, evaluation, _ = transformed
  ages = [r[features.EXAMPLE_AGE] for r in train]
  np.testing.assert_allclose(ages, [1.0, 0.75, 0.5, 0.5, 0.0])
  # Eval events come after the newest train event and count as "now".
  np.testing.assert_allclose(evaluation[0][features.EXAMPLE_AGE], 0.0)

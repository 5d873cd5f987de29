"""Model and export tests: masked mean, retrieval against serving_default."""

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from schemas import features
from tests.transform_fixtures import analyze_and_transform
from tests.transform_fixtures import row
from trainer import export
from trainer import model as model_lib
from trainer import retrieval

WINDOW = 4
NUM_OOV_BUCKETS = 1


def test_masked_mean_ignores_padding():
  embeddings = tf.constant([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])
  ids = tf.constant([[5, 7, 0]], dtype=tf.int64)
  mean = model_lib.MaskedMean()(embeddings, ids)
  np.testing.assert_allclose(mean.numpy(), [[2.0, 4.0]])


def test_masked_mean_of_empty_history_is_zero():
  embeddings = tf.ones([2, 3, 4])
  ids = tf.zeros([2, 3], dtype=tf.int64)
  mean = model_lib.MaskedMean()(embeddings, ids)
  np.testing.assert_array_equal(mean.numpy(), np.zeros([2, 4]))


def test_exclusion_mask_marks_listed_rows():
  excluded = tf.ragged.constant([[1, 3], [], [0, 9]], dtype=tf.int64)
  mask = retrieval.exclusion_mask(excluded, num_rows=5).numpy()
  expected = np.zeros([3, 5], dtype=bool)
  expected[0, [1, 3]] = True
  expected[2, 0] = True  # 9 is outside the table and is ignored.
  np.testing.assert_array_equal(mask, expected)


def test_block_top_k_equals_full_top_k():
  rng = np.random.default_rng(0)
  users = tf.constant(rng.normal(size=[3, 2]), tf.float32)
  items = tf.constant(rng.normal(size=[300, 2]), tf.float32)
  # Rounding creates ties, which both searches must break by lower index.
  score_all = lambda u, v: tf.round(tf.matmul(u, v, transpose_b=True) * 4.0)
  excluded = np.zeros([3, 300], dtype=bool)
  excluded[1, 5:40] = True
  scores, indices = retrieval.top_k_over_catalog(
      users, items, score_all, first_candidate=1, end_candidate=300, k=20,
      excluded=tf.constant(excluded), hidden_width=2**20)
  full = score_all(users, items).numpy()
  full[:, 0] = -np.inf
  full[excluded] = -np.inf
  expected = tf.math.top_k(full, k=20)
  np.testing.assert_array_equal(indices.numpy(), expected.indices.numpy())
  np.testing.assert_array_equal(scores.numpy(), expected.values.numpy())


def _example(values):
  feature = {}
  for name, value in values.items():
    if name in (features.TARGET, features.HISTORY_LENGTH):
      feature[name] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=value))
    else:
      feature[name] = tf.train.Feature(
          bytes_list=tf.train.BytesList(value=value))
  return tf.train.Example(
      features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module", params=[
    {"user_id_embedding": True},
    {"user_id_embedding": False, "use_example_age": True}],
                ids=["with-user-id", "history-and-age"])
def exported_model(request):
  products = [f"p{i}".encode() for i in range(30)]
  train_rows = []
  for user in range(6):
    history = []
    for step in range(8):
      product = products[(user * 5 + step * 3) % len(products)]
      train_rows.append(row(f"u{user}".encode(), product,
                            touched=history[-WINDOW:],
                            liked=history[-WINDOW:][:1]))
      history.append(product)
  _, _, tft_output = analyze_and_transform(train_rows, train_rows[:1], WINDOW,
                                           NUM_OOV_BUCKETS)
  vocabulary = tft_output.vocabulary_by_name("product_id_vocabulary")
  tf.keras.utils.set_random_seed(1)
  model = model_lib.build_model(
      num_products=len(vocabulary) + 1 + NUM_OOV_BUCKETS,
      num_users=6 + 1 + NUM_OOV_BUCKETS, window=WINDOW, embedding_dim=8,
      hidden_units=[16, 8], learning_rate=0.01,
      dropout=0.5, **request.param)
  export_dir = os.path.join(tempfile.mkdtemp(), "model")
  export.export_serving_model(model, tft_output, export_dir,
                              num_oov_buckets=NUM_OOV_BUCKETS, retrieval_k=5,
                              evaluation_k=7)
  return (tf.saved_model.load(export_dir), vocabulary,
          request.param["user_id_embedding"])


def test_user_id_embedding_is_optional():
  kwargs = dict(num_products=12, num_users=9, window=WINDOW, embedding_dim=4,
                hidden_units=[8], learning_rate=0.01)
  with_user = model_lib.build_model(**kwargs)
  history_only = model_lib.build_model(user_id_embedding=False, **kwargs)
  assert model_lib.user_embedding_layer(with_user) is not None
  assert model_lib.user_embedding_layer(history_only) is None
  # The user table (9 x 4) and its share of the first kernel (4 x 8) go.
  assert (with_user.count_params() - history_only.count_params() ==
          9 * 4 + 4 * 8)


def test_example_age_input_is_optional():
  kwargs = dict(num_products=12, num_users=9, window=WINDOW, embedding_dim=4,
                hidden_units=[8], learning_rate=0.01)
  with_age = model_lib.build_model(use_example_age=True, **kwargs)
  assert model_lib.uses_example_age(with_age)
  assert not model_lib.uses_example_age(model_lib.build_model(**kwargs))
  # Age 0 and a missing age give the same user vector, as at serving time.
  inputs = {name: tf.constant([[1, 2, 0, 0]], tf.int64)
            for name in features.HISTORY_FEATURES}
  inputs[features.USER_ID] = tf.constant([1], tf.int64)
  table = with_age.get_layer(model_lib.PRODUCT_EMBEDDING_LAYER)
  users = model_lib.user_embedding_layer(with_age)
  without = model_lib.user_tower(inputs, table, users, use_example_age=True)
  inputs[features.EXAMPLE_AGE] = tf.constant([0.0])
  at_zero = model_lib.user_tower(inputs, table, users, use_example_age=True)
  inputs[features.EXAMPLE_AGE] = tf.constant([0.25])
  older = model_lib.user_tower(inputs, table, users, use_example_age=True)
  np.testing.assert_array_equal(without.numpy(), at_zero.numpy())
  assert older.numpy()[0, -1] == 0.25
  assert without.shape == (1, 4 * 4 + 1)


def test_dropout_acts_in_training_only():
  scorer = model_lib.CandidateScorer([16, 16], dropout=0.5)
  users = tf.random.stateless_normal([32, 6], seed=[1, 2])
  items = tf.random.stateless_normal([32, 6], seed=[3, 4])
  inference = scorer([users, items], training=False)
  np.testing.assert_allclose(scorer([users, items]).numpy(), inference.numpy())
  assert not np.allclose(scorer([users, items], training=True).numpy(),
                         inference.numpy())
  # score_all, used by retrieval, scores as inference does.
  all_scores = scorer.score_all(users, items).numpy()
  np.testing.assert_allclose(np.diag(all_scores), inference.numpy(),
                             rtol=1e-5, atol=1e-6)


def test_dropout_out_of_range_rejected():
  with pytest.raises(ValueError, match="dropout"):
    model_lib.CandidateScorer([4], dropout=1.0)


def test_retrieval_matches_serving_default(exported_model):
  loaded, vocabulary, _ = exported_model
  user = {
      features.USER_ID: [b"u2"],
      features.TOUCHED: [b"p3", b"p4"],
      features.LIKED: [b"p3"],
      features.DISLIKED: [],
      features.SEEN: [b"p7"],
  }
  result = loaded.signatures[export.RETRIEVAL_SIGNATURE](
      examples=tf.constant([_example(user)]))
  top_ids = [item for item in result[export.TOP_K_IDS].numpy()[0]]

  candidates = [item for item in vocabulary
                if item not in (b"p3", b"p4", b"p7")]
  history = {name: user[name] for name in features.HISTORY_FEATURES}
  serialized = [
      _example({features.USER_ID: [b"u2"], features.PRODUCT_ID: [item],
                **history}) for item in candidates
  ]
  probabilities = loaded.signatures[export.SERVING_SIGNATURE](
      examples=tf.constant(serialized))[export.PROBABILITY].numpy()[:, 0]
  # A stable sort keeps vocabulary order among equal scores, as retrieval does.
  order = np.argsort(-probabilities, kind="stable")[:5]
  assert top_ids == [candidates[i] for i in order]
  np.testing.assert_allclose(result[export.TOP_K_SCORES].numpy()[0],
                             probabilities[order], rtol=1e-5)


def test_retrieval_never_returns_history_or_seen(exported_model):
  loaded, _, _ = exported_model
  user = {features.USER_ID: [b"u0"], features.TOUCHED: [b"p0", b"p1"],
          features.LIKED: [], features.DISLIKED: [b"p2"],
          features.SEEN: [b"p5", b"p6", b"unknown"]}
  result = loaded.signatures[export.EVALUATION_SIGNATURE](
      examples=tf.constant([_example(user)] * 3))
  ids = result[export.TOP_K_IDS].numpy()
  assert ids.shape == (3, 7)
  for excluded in (b"p0", b"p1", b"p2", b"p5", b"p6", b""):
    assert excluded not in set(ids.ravel())


def test_retrieval_answers_unknown_user(exported_model):
  loaded, vocabulary, _ = exported_model
  result = loaded.signatures[export.RETRIEVAL_SIGNATURE](
      examples=tf.constant([_example({features.USER_ID: [b"stranger"]})]))
  ids = result[export.TOP_K_IDS].numpy()[0]
  assert len(set(ids)) == 5
  assert set(ids) <= set(vocabulary)


def test_history_only_model_ignores_user_id(exported_model):
  loaded, _, user_id_embedding = exported_model
  history = {features.TOUCHED: [b"p3", b"p4"], features.LIKED: [b"p3"]}
  results = [
      loaded.signatures[export.RETRIEVAL_SIGNATURE](examples=tf.constant(
          [_example({features.USER_ID: [user], **history})]))
      for user in (b"u1", b"u4")]
  same = np.allclose(results[0][export.TOP_K_SCORES].numpy(),
                     results[1][export.TOP_K_SCORES].numpy())
  assert same != user_id_embedding

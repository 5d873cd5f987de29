"""Two-tower model tests: the corrected loss, training, run_fn and export."""

import math
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from schemas import features
from tests.transform_fixtures import analyze_and_transform
from tests.transform_fixtures import row
from trainer import export
from trainer import hyperparameters as hyperparameters_lib
from trainer import task
from trainer import two_tower_export
from trainer import two_tower_model
from trainer import validation

WINDOW = 4
NUM_OOV_BUCKETS = 1
NUM_USERS = 8
NUM_CLUSTERS = 4
ITEMS_PER_CLUSTER = 6


def test_loss_on_hand_computed_batch():
  # Two users, their positives (rows 5 and 7) and one extra negative that
  # is row 7 again, which is an accidental hit for user 1 only.
  user_vectors = tf.constant([[1.0, 0.0], [0.0, 1.0]])
  candidate_vectors = tf.constant([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
  candidate_rows = tf.constant([5, 7, 7], tf.int64)
  log_counts = tf.math.log(tf.constant([0.5, 1.0, 2.0]))
  # Corrected logits u . v - log count:
  #   user 0: [1 + ln 2, 0, 1 - ln 2]
  #   user 1: [ln 2, 2, -inf], column 2 masked as an accidental hit.
  # loss 0 = log(2e + 1 + e / 2) - (1 + ln 2) = log(2.5e + 1) - 1 - ln 2
  # loss 1 = log(2 + e^2) - 2
  losses = two_tower_model.in_batch_softmax_loss(
      user_vectors, candidate_vectors, candidate_rows, log_counts).numpy()
  np.testing.assert_allclose(losses, [0.3604257054, 0.2395447662], rtol=1e-6)


def test_loss_gradient_is_finite_with_masked_hits():
  user_vectors = tf.Variable([[1.0, 0.0], [0.0, 1.0]])
  candidate_vectors = tf.constant([[1.0, 0.0], [1.0, 0.0]])
  rows = tf.constant([3, 3], tf.int64)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(two_tower_model.in_batch_softmax_loss(
        user_vectors, candidate_vectors, rows, tf.zeros([2])))
  # Both columns are the same item, so each user's only unmasked logit is
  # its positive and the loss is exactly 0.
  assert loss.numpy() == pytest.approx(0.0)
  assert np.all(np.isfinite(tape.gradient(loss, user_vectors).numpy()))


def test_candidate_log_counts_mix_batch_and_uniform():
  probability = tf.constant([0.0, 0.2, 0.3, 0.5])
  rows = tf.constant([1, 2, 3], tf.int64)
  # B = 2 positives and M = 2 uniform draws over V = 2 rows (1 and 2); row 3
  # is an out-of-vocabulary bucket, which uniform draws never hit.
  log_counts = two_tower_model.candidate_log_counts(
      rows, probability, batch_size=2, num_extra=2, vocabulary_size=2)
  np.testing.assert_allclose(
      log_counts.numpy(), np.log([2 * 0.2 + 1.0, 2 * 0.3 + 1.0, 2 * 0.5]),
      rtol=1e-6)


def test_logq_without_extras_equals_log_probability():
  # Yi et al. subtract log p; the expected count B * p differs by log B for
  # every candidate, which leaves the softmax unchanged.
  probability = tf.constant([0.0, 0.1, 0.6, 0.3])
  rows = tf.constant([1, 2, 3], tf.int64)
  user_vectors = tf.constant([[0.3, -1.0], [2.0, 0.5], [0.0, 1.0]])
  item_vectors = tf.constant([[1.0, 1.0], [-0.5, 2.0], [1.5, 0.0]])
  counts = two_tower_model.candidate_log_counts(
      rows, probability, batch_size=3, num_extra=0, vocabulary_size=3)
  ours = two_tower_model.in_batch_softmax_loss(user_vectors, item_vectors,
                                               rows, counts)
  logits = (user_vectors.numpy() @ item_vectors.numpy().T -
            np.log([0.1, 0.6, 0.3])[np.newaxis])
  expected = -np.diag(logits) + np.log(np.exp(logits).sum(axis=1))
  np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5)


def test_sampling_probability_smooths_counts():
  probability = two_tower_model.sampling_probability(np.array([0, 3, 0, 1]))
  np.testing.assert_allclose(probability, [0.0, 4 / 7, 1 / 7, 2 / 7],
                             rtol=1e-6)


def test_unknown_model_type_lists_choices():
  with pytest.raises(ValueError, match="classifier.*two_tower.*'dssm'"):
    hyperparameters_lib.Hyperparameters(model_type="dssm")


def test_negative_extra_negatives_rejected():
  with pytest.raises(ValueError, match="extra_negatives"):
    hyperparameters_lib.Hyperparameters(extra_negatives=-1)


def _product(cluster, index):
  return f"c{cluster}p{index}".encode()


def _rows(steps, offset):
  """Return rows where user u rates the items of cluster u % NUM_CLUSTERS.

  Each positive also gets a negative from the next cluster, which the
  two-tower input must drop.
  """
  rows = []
  histories = [[] for _ in range(NUM_USERS)]
  # Step-major order puts every user, and so every cluster, in each batch
  # of NUM_USERS positives.
  for step in range(steps):
    for user, history in enumerate(histories):
      cluster = user % NUM_CLUSTERS
      product = _product(cluster, (user + step + offset) % ITEMS_PER_CLUSTER)
      recent = history[-WINDOW:]
      rows.append(row(f"u{user}".encode(), product, touched=recent,
                      liked=recent[-1:]))
      rows.append(row(f"u{user}".encode(),
                      _product((cluster + 1) % NUM_CLUSTERS, step % 3),
                      touched=recent, liked=recent[-1:], target=0))
      history.append(product)
  return rows


@pytest.fixture(scope="module")
def transformed():
  """(train rows, eval rows, TFTransformOutput) of a real Transform run."""
  return analyze_and_transform(_rows(8, 0), _rows(3, 8), WINDOW,
                               NUM_OOV_BUCKETS)


def _labelled_batches(rows, batch_size):
  """Return (features, label, weight) batches, as `task.read_examples` does."""
  columns = {name: np.stack([np.asarray(r[name]).reshape(
      [WINDOW] if name in features.HISTORY_FEATURES else [])
                             for r in rows]).astype(np.int64)
             for name in rows[0]}
  labels = columns.pop(features.TARGET)
  dataset = tf.data.Dataset.from_tensor_slices(
      (columns, labels, np.ones(len(labels), np.float32)))
  return dataset.batch(batch_size)


def _train(transformed, seed, epochs, extra_negatives=2):
  train_rows, eval_rows, tft_output = transformed
  vocabulary = tft_output.vocabulary_by_name("product_id_vocabulary")
  num_products = len(vocabulary) + 1 + NUM_OOV_BUCKETS
  train = validation.positive_batches(_labelled_batches(train_rows, 5), 8)
  evaluation = validation.positive_batches(
      _labelled_batches(eval_rows, 5), 8)
  counts = two_tower_model.count_positive_items(train, num_products)

  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  model = two_tower_model.build_two_tower_model(
      num_products=num_products, num_users=NUM_USERS + 1 + NUM_OOV_BUCKETS,
      window=WINDOW, embedding_dim=8, hidden_units=[16], learning_rate=0.03,
      item_probability=two_tower_model.sampling_probability(counts),
      vocabulary_size=len(vocabulary), extra_negatives=extra_negatives,
      seed=seed)
  history = model.fit(train, validation_data=evaluation, epochs=epochs,
                      verbose=0)
  return model, history.history, counts


@pytest.fixture(scope="module")
def trained(transformed):
  return _train(transformed, seed=3, epochs=8)


def test_positive_batches_drop_negatives(transformed):
  train_rows, _, _ = transformed
  batches = list(validation.positive_batches(
      _labelled_batches(train_rows, 5), 8))
  positives = sum(1 for r in train_rows if r[features.TARGET] == 1)
  assert [len(b[features.PRODUCT_ID]) for b in batches[:-1]] == [8] * (
      len(batches) - 1)
  assert sum(len(b[features.PRODUCT_ID]) for b in batches) == positives
  assert features.TARGET not in batches[0]


def test_count_positive_items_counts_positives_only(trained, transformed):
  _, _, counts = trained
  train_rows, _, _ = transformed
  expected = np.zeros_like(counts)
  for r in train_rows:
    if r[features.TARGET] == 1:
      expected[int(r[features.PRODUCT_ID])] += 1
  np.testing.assert_array_equal(counts, expected)


def test_training_reduces_loss(trained):
  _, history, _ = trained
  assert history["loss"][-1] < 0.7 * history["loss"][0]
  assert history["val_loss"][-1] < history["val_loss"][0]


def test_training_is_deterministic_with_seed(trained, transformed):
  model, history, _ = trained
  again, history_again, _ = _train(transformed, seed=3, epochs=8)
  assert history_again == history
  for ours, theirs in zip(model.get_weights(), again.get_weights()):
    np.testing.assert_array_equal(ours, theirs)


def _example(values):
  feature = {}
  for name, value in values.items():
    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=value))
  return tf.train.Example(
      features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def exported(trained, transformed):
  model, _, _ = trained
  _, _, tft_output = transformed
  export_dir = os.path.join(tempfile.mkdtemp(), "model")
  two_tower_export.export_two_tower_model(
      model, tft_output, export_dir, num_oov_buckets=NUM_OOV_BUCKETS,
      retrieval_k=5, evaluation_k=9)
  vocabulary = tft_output.vocabulary_by_name("product_id_vocabulary")
  return tf.saved_model.load(export_dir), export_dir, vocabulary


def _saved_product_table(export_dir):
  """Read the product table from the SavedModel's variables checkpoint."""
  reader = tf.train.load_checkpoint(
      os.path.join(export_dir, "variables", "variables"))
  keys = [key for key in reader.get_variable_to_shape_map()
          if key.startswith("model/") and "embeddings/" in key]
  tables = [reader.get_tensor(key) for key in keys]
  # The user table has NUM_USERS + 1 + NUM_OOV_BUCKETS rows; the other one
  # is the product table.
  products = [t for t in tables if len(t) != NUM_USERS + 1 + NUM_OOV_BUCKETS]
  assert len(products) == 1, keys
  return products[0]


def test_item_embeddings_are_saved_vocabulary_rows(exported):
  loaded, export_dir, vocabulary = exported
  items = loaded.signatures[two_tower_export.ITEM_EMBEDDINGS_SIGNATURE]()
  assert list(items[two_tower_export.ITEM_IDS].numpy()) == vocabulary
  np.testing.assert_array_equal(
      items[two_tower_export.ITEM_EMBEDDINGS].numpy(),
      _saved_product_table(export_dir)[1:len(vocabulary) + 1])


def test_retrieval_equals_brute_force_dot_products(exported):
  loaded, _, _ = exported
  user = {
      features.USER_ID: [b"u1"],
      features.TOUCHED: [_product(1, 0), _product(1, 1)],
      features.LIKED: [_product(1, 1)],
      features.DISLIKED: [],
      features.SEEN: [_product(1, 2), b"unknown"],
  }
  excluded = {_product(1, 0), _product(1, 1), _product(1, 2)}
  serialized = tf.constant([_example(user)])

  items = loaded.signatures[two_tower_export.ITEM_EMBEDDINGS_SIGNATURE]()
  ids = list(items[two_tower_export.ITEM_IDS].numpy())
  matrix = items[two_tower_export.ITEM_EMBEDDINGS].numpy()
  user_vector = loaded.signatures[two_tower_export.USER_EMBEDDING_SIGNATURE](
      examples=serialized)[two_tower_export.USER_EMBEDDING].numpy()[0]
  scores = matrix @ user_vector
  candidates = [i for i, item in enumerate(ids) if item not in excluded]
  # A stable sort keeps vocabulary order among equal scores, as top_k does.
  order = np.argsort(-scores[candidates], kind="stable")[:5]
  expected = [candidates[i] for i in order]

  result = loaded.signatures[export.RETRIEVAL_SIGNATURE](examples=serialized)
  assert list(result[export.TOP_K_IDS].numpy()[0]) == [ids[i] for i in expected]
  np.testing.assert_allclose(result[export.TOP_K_SCORES].numpy()[0],
                             scores[expected], rtol=1e-5, atol=1e-6)


def test_serving_default_returns_dot_product(exported):
  loaded, _, _ = exported
  history = {features.TOUCHED: [_product(2, 0)], features.LIKED: [],
             features.DISLIKED: [_product(3, 1)]}
  candidates = [_product(2, 3), _product(0, 5)]
  serialized = [
      _example({features.USER_ID: [b"u2"], features.PRODUCT_ID: [item],
                **history}) for item in candidates
  ]
  served = loaded.signatures[export.SERVING_SIGNATURE](
      examples=tf.constant(serialized))[export.PROBABILITY].numpy()
  assert served.shape == (2, 1)

  user_vector = loaded.signatures[two_tower_export.USER_EMBEDDING_SIGNATURE](
      examples=tf.constant([_example({features.USER_ID: [b"u2"], **history})])
  )[two_tower_export.USER_EMBEDDING].numpy()[0]
  items = loaded.signatures[two_tower_export.ITEM_EMBEDDINGS_SIGNATURE]()
  ids = list(items[two_tower_export.ITEM_IDS].numpy())
  matrix = items[two_tower_export.ITEM_EMBEDDINGS].numpy()
  expected = [matrix[ids.index(item)] @ user_vector for item in candidates]
  np.testing.assert_allclose(served[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_evaluation_signature_excludes_history_and_seen(exported):
  loaded, _, vocabulary = exported
  user = {features.USER_ID: [b"u0"],
          features.TOUCHED: [_product(0, 0), _product(0, 1)],
          features.LIKED: [], features.DISLIKED: [_product(0, 2)],
          features.SEEN: [_product(0, 3), _product(0, 4), b"unknown"]}
  result = loaded.signatures[export.EVALUATION_SIGNATURE](
      examples=tf.constant([_example(user)] * 3))
  ids = result[export.TOP_K_IDS].numpy()
  assert ids.shape == (3, 9)
  returned = set(ids.ravel())
  for excluded in (_product(0, 0), _product(0, 1), _product(0, 2),
                   _product(0, 3), _product(0, 4), b""):
    assert excluded not in returned
  assert returned <= set(vocabulary)


def test_retrieval_answers_unknown_user(exported):
  loaded, _, vocabulary = exported
  result = loaded.signatures[export.RETRIEVAL_SIGNATURE](
      examples=tf.constant([_example({features.USER_ID: [b"stranger"]})]))
  ids = result[export.TOP_K_IDS].numpy()[0]
  assert len(set(ids)) == 5
  assert set(ids) <= set(vocabulary)


def test_item_embedding_files_match_signature(exported):
  loaded, export_dir, _ = exported
  items = loaded.signatures[two_tower_export.ITEM_EMBEDDINGS_SIGNATURE]()
  folder = os.path.join(export_dir, two_tower_export.ASSETS_EXTRA_DIR)
  with open(os.path.join(folder, two_tower_export.ITEM_IDS_FILE),
            encoding="utf-8") as ids_file:
    ids = ids_file.read().splitlines()
  vectors = np.loadtxt(
      os.path.join(folder, two_tower_export.ITEM_EMBEDDINGS_FILE),
      delimiter="\t", dtype=np.float32)
  assert ids == [i.decode() for i in items[two_tower_export.ITEM_IDS].numpy()]
  np.testing.assert_array_equal(
      vectors, items[two_tower_export.ITEM_EMBEDDINGS].numpy())


def test_item_embedding_files_skip_unsafe_ids(tmp_path):
  written = two_tower_export.write_item_embeddings(
      np.array([b"ok", b"bad\tid"]), np.zeros([2, 3], np.float32),
      str(tmp_path / "assets.extra"))
  assert not written
  assert not (tmp_path / "assets.extra").exists()


def _feature(value):
  value = np.asarray(value).ravel()
  if value.dtype.kind == "f":
    return tf.train.Feature(float_list=tf.train.FloatList(value=value))
  return tf.train.Feature(int64_list=tf.train.Int64List(value=value))


def _write_transformed(rows, path):
  with tf.io.TFRecordWriter(path) as writer:
    for r in rows:
      feature = {name: _feature(value) for name, value in r.items()}
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())


def _tf_dataset_factory(file_pattern, options, schema):
  return tfxio.TFExampleRecord(
      file_pattern, schema=schema).TensorFlowDataset(options)


def test_run_fn_trains_and_exports_two_tower(transformed, tmp_path):
  train_rows, eval_rows, tft_output = transformed
  _write_transformed(train_rows, str(tmp_path / "train.tfrecord"))
  _write_transformed(eval_rows, str(tmp_path / "eval.tfrecord"))
  params = hyperparameters_lib.Hyperparameters(
      model_type=hyperparameters_lib.TWO_TOWER, embedding_dim=8,
      hidden_units=(16,), epochs=2, batch_size=8, window=WINDOW,
      num_oov_buckets=NUM_OOV_BUCKETS, retrieval_k=3, evaluation_k=4,
      extra_negatives=2, user_id_embedding=False, use_example_age=True,
      early_stopping_patience=1, early_stopping_metric="map", validation_k=3)
  fn_args = tfx.components.FnArgs(
      train_files=[str(tmp_path / "train.tfrecord")],
      eval_files=[str(tmp_path / "eval.tfrecord")],
      transform_output=os.path.dirname(tft_output.transform_savedmodel_dir),
      data_accessor=tfx.components.DataAccessor(
          tf_dataset_factory=_tf_dataset_factory, record_batch_factory=None,
          data_view_decode_fn=None),
      serving_model_dir=str(tmp_path / "serving"),
      model_run_dir=str(tmp_path / "logs"),
      custom_config=params.to_custom_config())
  task.run_fn(fn_args)

  loaded = tf.saved_model.load(str(tmp_path / "serving"))
  assert set(loaded.signatures) == {
      export.SERVING_SIGNATURE, export.RETRIEVAL_SIGNATURE,
      export.EVALUATION_SIGNATURE, two_tower_export.USER_EMBEDDING_SIGNATURE,
      two_tower_export.ITEM_EMBEDDINGS_SIGNATURE}
  result = loaded.signatures[export.EVALUATION_SIGNATURE](
      examples=tf.constant([_example({features.USER_ID: [b"u1"]})]))
  assert result[export.TOP_K_IDS].shape == (1, 4)
  assert tf.io.gfile.glob(str(tmp_path / "logs" / "train" / "events.*"))

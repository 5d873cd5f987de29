"""TensorFlow Transform preprocessing: raw string ids to padded integer ids.

TFX's Transform component computes vocabularies on the splits it is
configured to analyze. The pipeline sets that to `train` only, so no id from
the evaluation or holdout period enters a vocabulary.

Integer layout of every id feature, for a vocabulary of V entries and B
out-of-vocabulary buckets:

* 0: padding. It never stands for a real id, so the model can mask it out.
* 1 .. V: vocabulary entries, most frequent first (TFT's order, ties broken
  by the id's bytes, so the mapping is deterministic).
* V + 1 .. V + B: hashed buckets for ids that are not in the vocabulary.

One product vocabulary is shared by `product_id` and the three history
lists, so an item has a single index, and so a single embedding row,
wherever it appears.
"""

import tensorflow as tf
import tensorflow_transform as tft

from schemas import features

PRODUCT_VOCABULARY = "product_id_vocabulary"
USER_VOCABULARY = "user_id_vocabulary"
# Index reserved for history padding; see the module docstring.
PADDING_INDEX = 0

# Values the pipeline passes through `custom_config` of the Transform
# component; they have defaults so the module also works without them.
WINDOW_KEY = "window"
NUM_OOV_BUCKETS_KEY = "num_oov_buckets"
MIN_ITEM_COUNT_KEY = "min_item_count"


def _flat_values(tensor) -> tf.Tensor:
  """Return the values of a dense, sparse or ragged tensor as one vector."""
  if isinstance(tensor, tf.SparseTensor):
    return tensor.values
  if isinstance(tensor, tf.RaggedTensor):
    return tensor.flat_values
  return tf.reshape(tensor, [-1])


def _to_ragged(tensor) -> tf.RaggedTensor:
  """Return a [batch, (len)] ragged view of a list feature."""
  if isinstance(tensor, tf.SparseTensor):
    return tf.RaggedTensor.from_sparse(tensor)
  if isinstance(tensor, tf.RaggedTensor):
    return tensor
  return tf.RaggedTensor.from_tensor(tensor)


def _scalar(tensor) -> tf.Tensor:
  """Return a [batch] tensor from a [batch, 1] dense or sparse feature."""
  if isinstance(tensor, tf.SparseTensor):
    tensor = tf.sparse.to_dense(tensor, default_value=b"")
  return tf.reshape(tensor, [-1])


def encode_ids(ids, vocabulary, num_oov_buckets: int):
  """Map string ids to 1-based vocabulary indices (0 is kept for padding)."""
  indices = tft.apply_vocabulary(
      ids, deferred_vocab_filename_tensor=vocabulary,
      num_oov_buckets=num_oov_buckets)
  if isinstance(indices, tf.SparseTensor):
    return tf.SparseTensor(indices.indices, indices.values + 1,
                           indices.dense_shape)
  return indices + 1


def pad_history(indices: tf.RaggedTensor, window: int) -> tf.Tensor:
  """Keep the last `window` ids of each row and right-pad with 0 to `window`.

  Lists are stored oldest first, so the last entries are the most recent
  items; a list longer than the window loses its oldest entries.
  """
  recent = indices[:, -window:]
  return recent.to_tensor(default_value=PADDING_INDEX, shape=[None, window])


def example_age(timestamps: tf.Tensor) -> tf.Tensor:
  """Return each example's age as a fraction of the analyzed period.

  age = max(0, (newest - t) / (newest - oldest)), with newest and oldest
  taken over the analyzed (train) split, so train examples lie in [0, 1].
  Eval examples, which come after the train split, get 0 like serving
  examples: a negative age lies outside what the model saw in training,
  and the validation loss would then measure extrapolation instead of the
  serving condition. A period of one timestamp gives 0.

  Args:
    timestamps: [batch] int64 Unix seconds.

  Returns:
    [batch] float32.
  """
  newest = tft.max(timestamps, reduce_instance_dims=True)
  oldest = tft.min(timestamps, reduce_instance_dims=True)
  span = tf.maximum(newest - oldest, 1)
  # Differences in int64 first: float32 cannot hold Unix seconds exactly.
  age = tf.cast(newest - timestamps, tf.float32) / tf.cast(span, tf.float32)
  return tf.maximum(age, 0.0)


def build_preprocessing_fn(window: int, num_oov_buckets: int,
                           min_item_count: int):
  """Return a `preprocessing_fn` closed over the given settings."""

  def preprocessing_fn(inputs):
    product_inputs = [inputs[name] for name in features.PRODUCT_FEATURES]
    all_products = tf.concat([_flat_values(t) for t in product_inputs], axis=0)
    product_vocabulary = tft.vocabulary(
        all_products,
        frequency_threshold=min_item_count,
        vocab_filename=PRODUCT_VOCABULARY)

    user_ids = _scalar(inputs[features.USER_ID])
    user_vocabulary = tft.vocabulary(user_ids, vocab_filename=USER_VOCABULARY)

    outputs = {
        features.USER_ID:
            encode_ids(user_ids, user_vocabulary, num_oov_buckets),
        features.PRODUCT_ID:
            encode_ids(_scalar(inputs[features.PRODUCT_ID]),
                       product_vocabulary, num_oov_buckets),
    }
    for name in features.HISTORY_FEATURES:
      history = _to_ragged(inputs[name])
      encoded = tf.ragged.map_flat_values(
          lambda ids: encode_ids(ids, product_vocabulary, num_oov_buckets),
          history)
      outputs[name] = pad_history(encoded, window)
    outputs[features.TARGET] = tf.reshape(
        tf.cast(inputs[features.TARGET], tf.int64), [-1])
    if features.TIMESTAMP in inputs:
      outputs[features.EXAMPLE_AGE] = example_age(
          tf.reshape(tf.cast(inputs[features.TIMESTAMP], tf.int64), [-1]))
    return outputs

  return preprocessing_fn


def preprocessing_fn(inputs, custom_config=None):
  """Entry point that TFX's Transform component calls.

  Args:
    inputs: Raw features parsed with the curated schema.
    custom_config: Optional dict with `window`, `num_oov_buckets` and
      `min_item_count`, set by the pipeline from its configuration.

  Returns:
    Transformed features: `user_id` and `product_id` as [batch] int64,
    each history list as [batch, window] int64, `target` as [batch], and,
    when the examples carry `timestamp`, `example_age` as [batch] float32.
  """
  custom_config = custom_config or {}
  return build_preprocessing_fn(
      window=int(custom_config.get(WINDOW_KEY, features.DEFAULT_WINDOW)),
      num_oov_buckets=int(custom_config.get(NUM_OOV_BUCKETS_KEY, 1)),
      min_item_count=int(custom_config.get(MIN_ITEM_COUNT_KEY, 1)),
  )(inputs)

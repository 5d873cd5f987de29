"""Serving signatures of the exported SavedModel.

All signatures take serialized `tf.train.Example` protos with raw string ids
and apply the Transform graph inside the model, so clients never see integer
ids:

* `serving_default`: a (user, history, candidate) example in, the engagement
  probability out, as the classifier was trained.
* `retrieval`: a user's features in (user_id, the three history lists and,
  optionally, `seen_product_id`), the top K product ids of the whole
  vocabulary and their probabilities out. Items in the history lists or in
  `seen_product_id` are never returned.
* `rank_for_evaluation`: the same search with K equal to the largest
  evaluation cut-off, called by the Evaluator on holdout examples.
"""

from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from schemas import features
from trainer import model as model_lib
from trainer import retrieval
from transform import preprocessing

SERVING_SIGNATURE = "serving_default"
RETRIEVAL_SIGNATURE = "retrieval"
EVALUATION_SIGNATURE = "rank_for_evaluation"
TOP_K_IDS = "top_k_ids"
TOP_K_SCORES = "top_k_scores"
PROBABILITY = "probability"
# Returned in place of an id when fewer than K items remain after exclusion.
NO_ITEM = b""


def _raw_spec(tft_output: tft.TFTransformOutput,
              names: List[str]) -> Dict[str, tf.io.FixedLenFeature]:
  spec = tft_output.raw_feature_spec()
  return {name: spec[name] for name in names}


def product_id_table(vocabulary: List[bytes], num_oov_buckets: int) -> tf.Tensor:
  """Return the string id of every product table row, as a constant.

  Row 0 is padding and the rows after the vocabulary are out-of-vocabulary
  buckets; neither is ever a retrieval result, so both map to NO_ITEM.
  """
  return tf.constant([NO_ITEM] + list(vocabulary) + [NO_ITEM] * num_oov_buckets)


class ExportModule(tf.Module):
  """Holds the trained model, the Transform layer and the id tables."""

  def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput,
               num_oov_buckets: int, retrieval_k: int, evaluation_k: int):
    super().__init__()
    self.model = model
    self.tft_layer = tft_output.transform_features_layer()
    vocabulary = tft_output.vocabulary_by_name(
        preprocessing.PRODUCT_VOCABULARY)
    self.vocabulary_size = len(vocabulary)
    if self.vocabulary_size == 0:
      raise ValueError("the product vocabulary is empty; nothing to rank")
    self.ids_by_row = product_id_table(vocabulary, num_oov_buckets)
    self.num_rows = self.vocabulary_size + 1 + num_oov_buckets
    # Exact string match to table row, for `seen_product_id`, which Transform
    # does not see. Unknown ids map to -1 and are dropped from exclusion.
    self.row_by_id = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(vocabulary)),
            tf.range(1, self.vocabulary_size + 1, dtype=tf.int64)),
        default_value=-1)
    self.retrieval_k = min(retrieval_k, self.vocabulary_size)
    self.evaluation_k = min(evaluation_k, self.vocabulary_size)

    self.serving_spec = _raw_spec(
        tft_output, [features.USER_ID, features.PRODUCT_ID] +
        list(features.HISTORY_FEATURES))
    self.user_spec = _raw_spec(tft_output, list(model_lib.USER_FEATURES))
    self.user_spec[features.SEEN] = tf.io.VarLenFeature(tf.string)

  def _transform(self, raw: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    transformed = self.tft_layer(raw)
    inputs = {name: transformed[name] for name in transformed
              if name in self.model.input}
    if model_lib.uses_example_age(self.model):
      # Serving examples have no timestamp: score as of the newest
      # training event, age 0.
      batch = tf.shape(inputs[features.USER_ID])[0]
      inputs[features.EXAMPLE_AGE] = tf.zeros([batch], tf.float32)
    return inputs

  def score_examples(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    raw = tf.io.parse_example(serialized, self.serving_spec)
    return {PROBABILITY: self.model(self._transform(raw))}

  def parse_user_examples(self, serialized: tf.Tensor):
    """Parse user examples and apply Transform.

    Returns:
      (transformed user features, `seen_product_id` as a SparseTensor of raw
      string ids, which Transform does not see).
    """
    raw = tf.io.parse_example(serialized, self.user_spec)
    seen = raw.pop(features.SEEN)
    return self.tft_layer(raw), seen

  def excluded_rows(self, transformed: Dict[str, tf.Tensor],
                    seen: tf.SparseTensor) -> tf.Tensor:
    """Return the [users, num_rows] mask of history and seen items."""
    seen_rows = tf.RaggedTensor.from_sparse(seen)
    seen_rows = tf.ragged.map_flat_values(self.row_by_id.lookup, seen_rows)
    history_rows = tf.concat(
        [tf.RaggedTensor.from_tensor(transformed[name])
         for name in features.HISTORY_FEATURES], axis=1)
    return retrieval.exclusion_mask(
        tf.concat([seen_rows, history_rows], axis=1), self.num_rows)

  def search_catalog(self, transformed: Dict[str, tf.Tensor],
                     excluded: tf.Tensor, k: int):
    """Return (logits, rows) [users, k] of the K best vocabulary items.

    Subclasses that score items differently override this method and
    `scores_from_logits`; parsing, exclusion and id lookup stay shared.
    """
    product_embedding = self.model.get_layer(
        model_lib.PRODUCT_EMBEDDING_LAYER)
    user_embedding = model_lib.user_embedding_layer(self.model)
    scorer = self.model.get_layer(model_lib.SCORER_LAYER)
    user_vectors = model_lib.user_tower(
        transformed, product_embedding, user_embedding,
        model_lib.uses_example_age(self.model))
    return retrieval.top_k_over_catalog(
        user_vectors, product_embedding.embeddings, scorer.score_all,
        first_candidate=1, end_candidate=self.vocabulary_size + 1, k=k,
        excluded=excluded, hidden_width=scorer.hidden_units[0])

  def scores_from_logits(self, logits: tf.Tensor) -> tf.Tensor:
    """Return the `top_k_scores` output: the classifier's probabilities."""
    return tf.sigmoid(logits)

  def top_k(self, serialized: tf.Tensor, k: int) -> Dict[str, tf.Tensor]:
    """Parse user examples and return the K best unseen items of each."""
    transformed, seen = self.parse_user_examples(serialized)
    excluded = self.excluded_rows(transformed, seen)
    logits, rows = self.search_catalog(transformed, excluded, k)
    found = tf.math.is_finite(logits)
    ids = tf.where(found, tf.gather(self.ids_by_row, rows), NO_ITEM)
    scores = tf.where(found, self.scores_from_logits(logits), 0.0)
    return {TOP_K_IDS: ids, TOP_K_SCORES: scores}


def signatures(module: ExportModule) -> Dict[str, tf.types.experimental.ConcreteFunction]:
  """Build the three signatures as concrete functions of `module`."""
  examples = tf.TensorSpec([None], tf.string, name="examples")

  @tf.function(input_signature=[examples])
  def serve(serialized):
    return module.score_examples(serialized)

  @tf.function(input_signature=[examples])
  def retrieve(serialized):
    return module.top_k(serialized, module.retrieval_k)

  @tf.function(input_signature=[examples])
  def rank_for_evaluation(serialized):
    return module.top_k(serialized, module.evaluation_k)

  return {
      SERVING_SIGNATURE: serve.get_concrete_function(),
      RETRIEVAL_SIGNATURE: retrieve.get_concrete_function(),
      EVALUATION_SIGNATURE: rank_for_evaluation.get_concrete_function(),
  }


def export_serving_model(model: keras.Model, tft_output: tft.TFTransformOutput,
                         export_dir: str, num_oov_buckets: int,
                         retrieval_k: int, evaluation_k: int) -> None:
  """Save `model` with the Transform graph and all three signatures."""
  module = ExportModule(model, tft_output, num_oov_buckets, retrieval_k,
                        evaluation_k)
  save_module(module, export_dir)


def save_module(module: ExportModule, export_dir: str) -> None:
  """Save a built export module with its three signatures."""
  tf.saved_model.save(module, export_dir, signatures=signatures(module))

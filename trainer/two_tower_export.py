"""Serving signatures of the two-tower model.

The three signatures of trainer/export.py keep their names, inputs and
output keys, so the Evaluator's `rank_for_evaluation` call and the MAP@K
metric work unchanged:

* `serving_default`: a (user, history, candidate) example in, `probability`
  out. For this model the value is the raw dot product of user vector and
  item embedding, not a probability. The softmax loss fixes only the
  differences between one user's scores, so sigmoid(dot) would not be
  calibrated. In float32 it also rounds to 1.0 for every dot product above
  about 17, which would make the best candidates tie. The key keeps its
  name so clients of either model read the same output.
* `retrieval` and `rank_for_evaluation`: exact dot-product search over
  every vocabulary row, history and `seen_product_id` items excluded as
  for the classifier. `top_k_scores` are dot products as well.

Two more signatures serve approximate nearest-neighbour (ANN) search,
which replaces the exact search when the catalog is too large for it:

* `user_embedding`: user examples in, `user_embedding` [users, d] out, the
  query vectors.
* `item_embeddings`: no input, `product_ids` [V] and `embeddings` [V, d]
  out, the vectors to index. Row i is vocabulary item i + 1, so the
  padding and out-of-vocabulary rows, which are never results, are left
  out.

NOTE: the signatures are tested through `tf.saved_model.load` only. Whether
TensorFlow Serving accepts a signature without inputs has not been tried.

The export also writes the item vectors to `assets.extra/` for ANN tools
that do not load TensorFlow (see `write_item_embeddings`). The
`item_embeddings` signature is the exact source: the text files hold the
same float32 values printed with 9 significant digits, which round-trip.
"""

import os
from typing import Dict

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import export
from trainer import retrieval
from trainer import two_tower_model

USER_EMBEDDING_SIGNATURE = "user_embedding"
ITEM_EMBEDDINGS_SIGNATURE = "item_embeddings"
USER_EMBEDDING = "user_embedding"
ITEM_IDS = "product_ids"
ITEM_EMBEDDINGS = "embeddings"

ASSETS_EXTRA_DIR = "assets.extra"
# One line per vocabulary item, in the order of the `item_embeddings`
# signature. The vectors file has tab-separated floats, the ids file the raw
# id decoded as UTF-8 (invalid bytes replaced). The pair is the vectors and
# metadata format of TensorBoard's embedding projector.
ITEM_EMBEDDINGS_FILE = "item_embeddings.tsv"
ITEM_IDS_FILE = "item_ids.tsv"


def dot_product_scores(user_vectors: tf.Tensor,
                       item_vectors: tf.Tensor) -> tf.Tensor:
  """Return scores [users, items] as dot products."""
  return tf.matmul(user_vectors, item_vectors, transpose_b=True)


class TwoTowerExportModule(export.ExportModule):
  """Export module whose search ranks items by dot product."""

  def search_catalog(self, transformed: Dict[str, tf.Tensor],
                     excluded: tf.Tensor, k: int):
    item_table = self.model.item_table
    # A block of b items costs b x d floats for the gathered vectors and
    # users x b for the scores, so the embedding size takes the place of
    # the classifier's hidden width in the block budget.
    return retrieval.top_k_over_catalog(
        self.model.user_vectors(transformed), item_table, dot_product_scores,
        first_candidate=1, end_candidate=self.vocabulary_size + 1, k=k,
        excluded=excluded, hidden_width=int(item_table.shape[1]))

  def scores_from_logits(self, logits: tf.Tensor) -> tf.Tensor:
    """Return the dot products unchanged; see the module docstring."""
    return logits

  def user_embedding(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    transformed, _ = self.parse_user_examples(serialized)
    return {USER_EMBEDDING: self.model.user_vectors(transformed)}

  def item_embeddings(self) -> Dict[str, tf.Tensor]:
    end = self.vocabulary_size + 1
    return {
        ITEM_IDS: self.ids_by_row[1:end],
        ITEM_EMBEDDINGS: tf.convert_to_tensor(self.model.item_table)[1:end],
    }


def signatures(
    module: TwoTowerExportModule
) -> Dict[str, tf.types.experimental.ConcreteFunction]:
  """Build the classifier's three signatures plus the two embedding ones."""
  result = export.signatures(module)
  examples = tf.TensorSpec([None], tf.string, name="examples")

  @tf.function(input_signature=[examples])
  def user_embedding(serialized):
    return module.user_embedding(serialized)

  @tf.function(input_signature=[])
  def item_embeddings():
    return module.item_embeddings()

  result[USER_EMBEDDING_SIGNATURE] = user_embedding.get_concrete_function()
  result[ITEM_EMBEDDINGS_SIGNATURE] = item_embeddings.get_concrete_function()
  return result


def write_item_embeddings(ids: np.ndarray, embeddings: np.ndarray,
                          directory: str) -> bool:
  """Write the item vectors and their ids as two TSV files.

  The files take about 10 bytes per float, so V items of dimension d need
  about 10 * V * d bytes next to the SavedModel.

  Args:
    ids: [V] raw ids as bytes.
    embeddings: [V, d] float32.
    directory: Folder to write into; created if missing.

  Returns:
    True when both files were written. False, after logging a warning,
    when an id contains a tab, newline or carriage return, which
    one-id-per-line files cannot store. Nothing is written then, and only
    the `item_embeddings` signature has the vectors.
  """
  labels = [item.decode("utf-8", "replace") for item in ids]
  unsafe = [label for label in labels if set(label) & set("\t\n\r")]
  if unsafe:
    logging.warning(
        "Not writing %s: %d product ids contain a tab or line break, for "
        "example %r; read the %s signature instead", ITEM_EMBEDDINGS_FILE,
        len(unsafe), unsafe[0], ITEM_EMBEDDINGS_SIGNATURE)
    return False

  tf.io.gfile.makedirs(directory)
  with tf.io.gfile.GFile(os.path.join(directory, ITEM_IDS_FILE), "w") as out:
    out.write("".join(label + "\n" for label in labels))
  with tf.io.gfile.GFile(os.path.join(directory, ITEM_EMBEDDINGS_FILE),
                         "w") as out:
    for vector in embeddings:
      out.write("\t".join(f"{value:.9g}" for value in vector) + "\n")
  return True


def export_two_tower_model(model: two_tower_model.TwoTowerModel,
                           tft_output: tft.TFTransformOutput, export_dir: str,
                           num_oov_buckets: int, retrieval_k: int,
                           evaluation_k: int) -> None:
  """Save `model` with the Transform graph, five signatures and item files."""
  save_module(TwoTowerExportModule(model, tft_output, num_oov_buckets,
                                   retrieval_k, evaluation_k), export_dir)


def save_module(module: TwoTowerExportModule, export_dir: str) -> None:
  """Save a built export module with its signatures and item files."""
  tf.saved_model.save(module, export_dir, signatures=signatures(module))
  items = module.item_embeddings()
  write_item_embeddings(items[ITEM_IDS].numpy(),
                        items[ITEM_EMBEDDINGS].numpy(),
                        os.path.join(export_dir, ASSETS_EXTRA_DIR))

"""Exact top-K retrieval over the whole product vocabulary, in graph.

Scoring every item for every user at once needs users x items x hidden
floats, which does not fit for large catalogs. The functions here walk the
catalog in blocks and keep a running top K, so memory is bounded by the
block size while the result equals one `tf.math.top_k` over all items:
earlier blocks hold lower indices and `top_k` prefers the earlier position,
so ties resolve to the lower vocabulary index either way.
"""

import tensorflow as tf

# Upper bound on floats in one users x block x hidden intermediate: 2**24
# floats is 64 MiB, which keeps a retrieval call's working set well under a
# typical serving container's memory.
BLOCK_ELEMENT_BUDGET = 2**24
MIN_BLOCK_SIZE = 64


def exclusion_mask(excluded_indices: tf.RaggedTensor,
                   num_rows: int) -> tf.Tensor:
  """Return a [users, num_rows] bool mask, True where an index is excluded.

  Args:
    excluded_indices: [users, (n)] int64 indices into the product table;
      padding (0) may appear and is harmless because 0 is never a candidate.
    num_rows: Rows of the product table.
  """
  rows = tf.cast(excluded_indices.value_rowids(), tf.int64)
  columns = tf.cast(excluded_indices.flat_values, tf.int64)
  in_range = (columns >= 0) & (columns < num_rows)
  coordinates = tf.stack([tf.boolean_mask(rows, in_range),
                          tf.boolean_mask(columns, in_range)], axis=1)
  num_users = tf.cast(excluded_indices.nrows(), tf.int64)
  counts = tf.scatter_nd(coordinates,
                         tf.ones_like(coordinates[:, 0], dtype=tf.int32),
                         tf.stack([num_users, tf.constant(num_rows, tf.int64)]))
  return counts > 0


def top_k_over_catalog(user_vectors: tf.Tensor, item_table: tf.Tensor,
                       score_all, first_candidate: int, end_candidate: int,
                       k: int, excluded: tf.Tensor, hidden_width: int):
  """Return the K best candidates for each user by exact search.

  Args:
    user_vectors: [users, d_user] float.
    item_table: [num_rows, d_item] product embeddings.
    score_all: Callable (user_vectors [u, d], item_vectors [b, d]) -> logits
      [u, b].
    first_candidate: First table index that is a real item (1: 0 is padding).
    end_candidate: One past the last real item; out-of-vocabulary buckets
      lie beyond it and are never recommended.
    k: Number of results; must not exceed end_candidate - first_candidate.
    excluded: [users, num_rows] bool mask of items never to return.
    hidden_width: Width of the scorer's first hidden layer, used to size
      blocks.

  Returns:
    (logits [users, k], indices [users, k] int64). Excluded items get -inf
    and only appear when fewer than k items remain.
  """
  num_users = tf.shape(user_vectors)[0]
  budget_per_user = BLOCK_ELEMENT_BUDGET // hidden_width
  block_size = tf.clip_by_value(
      budget_per_user // tf.maximum(num_users, 1), MIN_BLOCK_SIZE,
      end_candidate - first_candidate)

  best_scores = tf.fill([num_users, k], float("-inf"))
  best_indices = tf.zeros([num_users, k], dtype=tf.int64)

  def body(start, best_scores, best_indices):
    stop = tf.minimum(start + block_size, end_candidate)
    indices = tf.cast(tf.range(start, stop), tf.int64)
    scores = score_all(user_vectors, tf.gather(item_table, indices))
    blocked = tf.gather(excluded, indices, axis=1)
    scores = tf.where(blocked, tf.constant(float("-inf"), scores.dtype), scores)
    merged_scores = tf.concat([best_scores, scores], axis=1)
    merged_indices = tf.concat(
        [best_indices,
         tf.broadcast_to(indices[tf.newaxis], [num_users, stop - start])],
        axis=1)
    top = tf.math.top_k(merged_scores, k=k, sorted=True)
    return (stop, top.values,
            tf.gather(merged_indices, top.indices, batch_dims=1))

  _, best_scores, best_indices = tf.while_loop(
      lambda start, *_: start < end_candidate, body,
      (tf.constant(first_candidate, tf.int32), best_scores, best_indices),
      shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, k]),
                        tf.TensorShape([None, k])))
  return best_scores, best_indices

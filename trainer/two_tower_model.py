"""A two-tower retrieval model trained with a corrected in-batch softmax.

Covington, Adams and Sargin ("Deep Neural Networks for YouTube
Recommendations", RecSys 2016) pose candidate generation as extreme
multiclass classification: a network maps the user's features to a user
vector u, and the probability of item j is softmax(u . v_j) over the whole
catalog, where v_j is item j's embedding. At serving time the K items with
the largest dot product are the candidates, found by exact or approximate
nearest-neighbour search. This module builds that formulation; the binary
classifier in trainer/model.py is the alternative with sampled negatives.

    user input  = [user embedding,
                   masked mean of touched-item embeddings,
                   masked mean of liked-item embeddings,
                   masked mean of disliked-item embeddings]
    user vector = Dense(embedding_dim)(ReLU layers(user input))
    score(j)    = user vector . product_embedding[j]

Items are rows of the same product table that embeds the history lists, so
an item has one vector wherever it appears (row layout in
transform/preprocessing.py: 0 padding, 1..V vocabulary, then
out-of-vocabulary buckets). The last layer of the user tower is linear
rather than ReLU as in the paper's figure, because a ReLU output is
non-negative and so would confine every user vector to one orthant.

The full softmax over V items is replaced by a softmax over the other
positives of the batch (in-batch negatives) plus, optionally, a few items
drawn uniformly from the vocabulary and shared by the whole batch. In-batch
negatives are drawn in proportion to popularity, which pushes popular items
down; the logQ correction of Yi et al. ("Sampling-Bias-Corrected Neural
Modeling for Large Corpus Item Recommendations", RecSys 2019) removes that
bias by subtracting each candidate's log sampling probability from its
logit. See `in_batch_softmax_loss` and `candidate_log_counts`.
"""

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from schemas import features
from trainer import model as model_lib

USER_MLP_LAYER = "user_mlp"
SCORE_LAYER = "score"
# Pseudo-count added to every item's count of training positives. Items seen
# only in validation or as uniform negatives then have a finite log
# probability; see `sampling_probability`.
COUNT_PSEUDO_COUNT = 1.0
# Seed salt of the uniform negatives drawn for validation batches. Training
# steps use their step number (>= 0), so validation never reuses a training
# seed, and every validation pass draws the same negatives.
VALIDATION_SEED_SALT = -1


class UserMlp(keras.layers.Layer):
  """ReLU layers followed by a linear projection to the user vector."""

  def __init__(self, hidden_units: Sequence[int], output_dim: int, **kwargs):
    super().__init__(**kwargs)
    if not hidden_units:
      raise ValueError("hidden_units must name at least one layer size")
    self.hidden_units = list(hidden_units)
    self.output_dim = output_dim
    self.hidden_layers = [
        keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")
        for i, units in enumerate(self.hidden_units)
    ]
    self.projection = keras.layers.Dense(output_dim, name="projection")

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    hidden = inputs
    for layer in self.hidden_layers:
      hidden = layer(hidden)
    return self.projection(hidden)

  def get_config(self):
    config = super().get_config()
    config.update(hidden_units=self.hidden_units, output_dim=self.output_dim)
    return config


def count_positive_items(positives: tf.data.Dataset, num_rows: int) -> np.ndarray:
  """Count how often each product table row is the item of a positive.

  Args:
    positives: Batches of transformed features of positive examples only.
    num_rows: Rows of the product table.

  Returns:
    int64 counts [num_rows]. Ids outside [0, num_rows) raise an error
    instead of being dropped, because they mean the table is too small.
  """

  def add_batch(counts, batch):
    rows = tf.reshape(batch[features.PRODUCT_ID], [-1])
    tf.debugging.assert_less(
        rows, tf.constant(num_rows, rows.dtype),
        message="product_id is outside the product table")
    return counts + tf.math.bincount(rows, minlength=num_rows,
                                     maxlength=num_rows, dtype=tf.int64)

  return positives.reduce(tf.zeros([num_rows], tf.int64), add_batch).numpy()


def sampling_probability(counts: np.ndarray) -> np.ndarray:
  """Return each row's probability of being a positive, with add-one smoothing.

  p[j] = (counts[j] + 1) / sum over rows r >= 1 of (counts[r] + 1) for
  j >= 1, and p[0] = 0 because padding is never an item. The pseudo-count
  gives items that were never a training positive a finite logQ term, so
  validation batches, which may hold such items, have a finite loss. It
  changes the log probability of an item seen c times by log(1 + 1 / c),
  which matters only for the rarest items.
  """
  smoothed = counts.astype(np.float64) + COUNT_PSEUDO_COUNT
  smoothed[0] = 0.0
  return (smoothed / smoothed.sum()).astype(np.float32)


def candidate_log_counts(candidate_rows: tf.Tensor,
                         item_probability: tf.Tensor, batch_size: tf.Tensor,
                         num_extra: int, vocabulary_size: int) -> tf.Tensor:
  """Return the logQ term of each candidate: log of its expected count.

  A batch contains B positives drawn with probability p[j] each and M extra
  negatives drawn uniformly from rows 1..V, so item j is expected
  B * p[j] + M / V times among the candidates (the uniform term is 0 for
  out-of-vocabulary rows, which are never drawn). Subtracting the log of
  that count from every logit, the positive's included, is the sampled
  softmax correction. With M = 0 it equals Yi et al.'s log p[j] up to the
  constant log B, which the softmax ignores.

  Args:
    candidate_rows: [C] int64 product table rows of the candidates.
    item_probability: [num_rows] float32 from `sampling_probability`.
    batch_size: Scalar B, the number of positives in the batch.
    num_extra: M, the number of uniform extra negatives.
    vocabulary_size: V.

  Returns:
    [C] float32.
  """
  expected = (tf.cast(batch_size, tf.float32) *
              tf.gather(item_probability, candidate_rows))
  if num_extra:
    in_vocabulary = (candidate_rows >= 1) & (candidate_rows <= vocabulary_size)
    expected += tf.where(in_vocabulary, num_extra / vocabulary_size, 0.0)
  return tf.math.log(expected)


def in_batch_softmax_loss(user_vectors: tf.Tensor,
                          candidate_vectors: tf.Tensor,
                          candidate_rows: tf.Tensor,
                          log_counts: tf.Tensor) -> tf.Tensor:
  """Return the logQ-corrected softmax cross-entropy of each user [B].

  Candidate i < B is user i's positive; candidates from B on are extra
  negatives shared by all users. The logit of user i for candidate j is
  u_i . v_j - log_counts[j]. Accidental hits, meaning candidates j != i
  whose row equals user i's positive row (the same item twice in a batch,
  or an extra negative that happens to be the positive), are masked to
  -inf, so the positive is never also counted as its own negative. Other
  items of user i that are positives of other rows are not masked, because
  the batch does not say which items user i likes besides its positive.

  Args:
    user_vectors: [B, d].
    candidate_vectors: [C, d] with C >= B.
    candidate_rows: [C] product table rows of the candidates.
    log_counts: [C] from `candidate_log_counts`.
  """
  batch_size = tf.shape(user_vectors)[0]
  logits = tf.matmul(user_vectors, candidate_vectors, transpose_b=True)
  logits -= log_counts[tf.newaxis, :]

  positive_rows = candidate_rows[:batch_size]
  same_item = tf.equal(positive_rows[:, tf.newaxis], candidate_rows[tf.newaxis])
  own_column = tf.equal(
      tf.range(batch_size)[:, tf.newaxis],
      tf.range(tf.shape(candidate_rows)[0])[tf.newaxis])
  accidental_hit = same_item & tf.logical_not(own_column)
  logits = tf.where(accidental_hit, tf.constant(float("-inf"), logits.dtype),
                    logits)
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.range(batch_size), logits=logits)


class TwoTowerModel(keras.Model):
  """Functional two-tower model with a sampled-softmax `train_step`.

  Calling the model maps user features and `product_id` to the dot-product
  score [batch, 1], as `serving_default` does. `fit` ignores that output:
  each step takes a batch of positives only and minimizes
  `in_batch_softmax_loss`. Build it with `build_two_tower_model`.
  """

  def __init__(self, inputs, outputs, item_probability: np.ndarray,
               vocabulary_size: int, extra_negatives: int, seed: int,
               **kwargs):
    super().__init__(inputs=inputs, outputs=outputs, **kwargs)
    self.item_probability = tf.constant(item_probability, tf.float32)
    self.vocabulary_size = vocabulary_size
    self.extra_negatives = extra_negatives
    self.seed = seed
    self.loss_tracker = keras.metrics.Mean(name="loss")

  @property
  def metrics(self):
    return [self.loss_tracker]

  def user_vectors(self, user_features: Dict[str, tf.Tensor]) -> tf.Tensor:
    """Return the user vectors [batch, embedding_dim] of integer features."""
    tower_input = model_lib.user_tower(
        user_features, self.get_layer(model_lib.PRODUCT_EMBEDDING_LAYER),
        model_lib.user_embedding_layer(self),
        model_lib.uses_example_age(self))
    return self.get_layer(USER_MLP_LAYER)(tower_input)

  @property
  def item_table(self) -> tf.Variable:
    """The shared product embedding table [num_rows, embedding_dim]."""
    return self.get_layer(model_lib.PRODUCT_EMBEDDING_LAYER).embeddings

  def batch_loss(self, batch: Dict[str, tf.Tensor],
                 seed_salt: tf.Tensor) -> tf.Tensor:
    """Return the mean loss of a batch of positives.

    Args:
      batch: Transformed features of positives.
      seed_salt: Second half of the stateless seed of the uniform
        negatives, so the draw depends only on (seed, salt).
    """
    positive_rows = tf.reshape(batch[features.PRODUCT_ID], [-1])
    candidate_rows = positive_rows
    if self.extra_negatives:
      extra_rows = tf.random.stateless_uniform(
          [self.extra_negatives],
          seed=tf.stack([tf.constant(self.seed, tf.int64),
                         tf.cast(seed_salt, tf.int64)]),
          minval=1, maxval=self.vocabulary_size + 1, dtype=tf.int64)
      candidate_rows = tf.concat([positive_rows, extra_rows], axis=0)

    log_counts = candidate_log_counts(
        candidate_rows, self.item_probability, tf.shape(positive_rows)[0],
        self.extra_negatives, self.vocabulary_size)
    candidate_vectors = tf.gather(self.item_table, candidate_rows)
    losses = in_batch_softmax_loss(self.user_vectors(batch), candidate_vectors,
                                   candidate_rows, log_counts)
    return tf.reduce_mean(losses)

  def train_step(self, data):
    batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
      loss = self.batch_loss(batch, self.optimizer.iterations)
      # Gradients of all replicas are summed, so each replica's share of
      # the mean loss is divided by their number.
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      scaled_loss = (loss + sum(self.losses)) / replicas
    gradients = tape.gradient(scaled_loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    self.loss_tracker.update_state(loss)
    return {"loss": self.loss_tracker.result()}

  def test_step(self, data):
    batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    loss = self.batch_loss(batch, tf.constant(VALIDATION_SEED_SALT, tf.int64))
    self.loss_tracker.update_state(loss)
    return {"loss": self.loss_tracker.result()}


def build_two_tower_model(num_products: int, num_users: int, window: int,
                          embedding_dim: int, hidden_units: Sequence[int],
                          learning_rate: float, item_probability: np.ndarray,
                          vocabulary_size: int, extra_negatives: int = 0,
                          seed: int = 0,
                          user_id_embedding: bool = True,
                          use_example_age: bool = False) -> TwoTowerModel:
  """Build and compile the two-tower model.

  Args:
    num_products: Rows of the product table: padding, vocabulary and
      out-of-vocabulary buckets.
    num_users: Rows of the user table, laid out the same way.
    window: Length of each padded history list.
    embedding_dim: Size of the embeddings and of the user vector.
    hidden_units: Sizes of the ReLU layers of the user tower.
    learning_rate: Adam's learning rate.
    item_probability: [num_products] probability of each row being a
      training positive, from `sampling_probability`.
    vocabulary_size: V, the number of vocabulary rows (1..V); uniform extra
      negatives are drawn from them.
    extra_negatives: Items drawn uniformly per batch as extra negatives, on
      top of the in-batch ones; 0 uses in-batch negatives only.
    seed: Seed of the extra negatives.
    user_id_embedding: Whether the user tower's input includes a per-user
      embedding (see `model.build_model`).
    use_example_age: Whether the user tower's input includes
      `example_age` (see `model.build_model`).

  Returns:
    A compiled `TwoTowerModel` taking int64 `user_id` [batch],
    `product_id` [batch] and the history lists [batch, window].
  """
  if item_probability.shape != (num_products,):
    raise ValueError(
        f"item_probability has shape {item_probability.shape}, expected "
        f"({num_products},), one entry per product table row")
  if not 1 <= vocabulary_size < num_products:
    raise ValueError(
        f"vocabulary_size must be in [1, {num_products - 1}], got "
        f"{vocabulary_size}")
  if extra_negatives < 0:
    raise ValueError(f"extra_negatives must be >= 0, got {extra_negatives}")

  inputs = model_lib.model_inputs(window, use_example_age)
  product_embedding = model_lib.embedding_table(
      num_products, embedding_dim, model_lib.PRODUCT_EMBEDDING_LAYER)
  user_embedding = model_lib.user_embedding_table(num_users, embedding_dim,
                                                  user_id_embedding)
  tower_input = model_lib.user_tower(inputs, product_embedding, user_embedding,
                                    use_example_age)
  user_vector = UserMlp(hidden_units, embedding_dim,
                        name=USER_MLP_LAYER)(tower_input)
  item_vector = product_embedding(inputs[features.PRODUCT_ID])
  score = keras.layers.Dot(axes=1, name=SCORE_LAYER)([user_vector, item_vector])

  model = TwoTowerModel(inputs=inputs, outputs=score,
                        item_probability=item_probability,
                        vocabulary_size=vocabulary_size,
                        extra_negatives=extra_negatives, seed=seed)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
  return model

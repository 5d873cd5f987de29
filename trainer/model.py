"""The candidate-generation classifier of Covington et al. (RecSys 2016).

"Deep Neural Networks for YouTube Recommendations" learns item embeddings
from the user's recent history and trains a network that, given a user and
a candidate item, predicts whether the user engages with the item. This
module builds that network as a Keras 2 model (`tf_keras`, as TFX 1.16
requires):

    user vector = [user embedding (optional),
                   masked mean of touched-item embeddings,
                   masked mean of liked-item embeddings,
                   masked mean of disliked-item embeddings,
                   example age (optional)]
    logit       = MLP([user vector, candidate embedding])

One embedding table serves the candidate and the three history lists. Index
0 is padding (see transform/preprocessing.py): it is excluded from every
mean, and a history with no real item averages to the zero vector.

The MLP is a `CandidateScorer` layer so the retrieval signature can score
one user against a whole block of items without repeating the user side of
the first dense layer for every item.
"""

from typing import Dict, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from schemas import features

PRODUCT_EMBEDDING_LAYER = "product_embedding"
USER_EMBEDDING_LAYER = "user_embedding"
SCORER_LAYER = "candidate_scorer"
USER_FEATURES = (features.USER_ID,) + features.HISTORY_FEATURES


class MaskedMean(keras.layers.Layer):
  """Mean of the embeddings whose id is not the padding id 0.

  Keras' `mask_zero=True` followed by a plain average would count padding
  vectors in the mean. This layer divides by the number of real ids instead
  and returns zeros for a row with none.
  """

  def call(self, embeddings: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """Average `embeddings` [batch, n, dim] over positions where ids != 0."""
    mask = tf.cast(tf.not_equal(ids, 0), embeddings.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(embeddings * mask, axis=-2)
    count = tf.reduce_sum(mask, axis=-2)
    return tf.math.divide_no_nan(total, count)


class CandidateScorer(keras.layers.Layer):
  """MLP that maps (user vector, item vector) to one logit.

  The first hidden layer's kernel is split into a user part and an item
  part, so `score_all` computes it as user_part[:, None] + item_part[None]
  for a whole block of items at once.
  """

  def __init__(self, hidden_units: Sequence[int], dropout: float = 0.0,
               **kwargs):
    super().__init__(**kwargs)
    if not hidden_units:
      raise ValueError("hidden_units must name at least one layer size")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    self.hidden_units = list(hidden_units)
    self.dropout = dropout

  def build(self, input_shape):
    user_shape, item_shape = input_shape
    user_dim, item_dim = int(user_shape[-1]), int(item_shape[-1])
    first = self.hidden_units[0]
    self.user_kernel = self.add_weight(
        name="user_kernel", shape=(user_dim, first),
        initializer="glorot_uniform")
    self.item_kernel = self.add_weight(
        name="item_kernel", shape=(item_dim, first),
        initializer="glorot_uniform")
    self.first_bias = self.add_weight(
        name="first_bias", shape=(first,), initializer="zeros")
    self.deeper_layers = [
        keras.layers.Dense(units, activation="relu", name=f"hidden_{i + 1}")
        for i, units in enumerate(self.hidden_units[1:])
    ]
    self.output_layer = keras.layers.Dense(1, name="logit")
    super().build(input_shape)

  def _head(self, first_pre_activation: tf.Tensor,
            training: bool = False) -> tf.Tensor:
    hidden = tf.nn.relu(first_pre_activation)
    for layer in self.deeper_layers:
      hidden = self._drop(hidden, training)
      hidden = layer(hidden)
    hidden = self._drop(hidden, training)
    return tf.squeeze(self.output_layer(hidden), axis=-1)

  def _drop(self, hidden: tf.Tensor, training: bool) -> tf.Tensor:
    if training and self.dropout:
      return tf.nn.dropout(hidden, rate=self.dropout)
    return hidden

  def call(self, inputs, training=None):
    """Return logits [batch] for paired user and item vectors."""
    user_vectors, item_vectors = inputs
    first = (tf.matmul(user_vectors, self.user_kernel) +
             tf.matmul(item_vectors, self.item_kernel) + self.first_bias)
    return self._head(first, training=bool(training))

  def score_all(self, user_vectors: tf.Tensor,
                item_vectors: tf.Tensor) -> tf.Tensor:
    """Return logits [users, items] for every user against every item.

    Memory grows with users x items x hidden_units[0]; callers pass items
    in blocks to bound it.
    """
    user_part = tf.matmul(user_vectors, self.user_kernel) + self.first_bias
    item_part = tf.matmul(item_vectors, self.item_kernel)
    return self._head(user_part[:, tf.newaxis, :] + item_part[tf.newaxis])

  def get_config(self):
    config = super().get_config()
    config["hidden_units"] = self.hidden_units
    config["dropout"] = self.dropout
    return config


def embedding_table(num_rows: int, dim: int,
                    name: str) -> keras.layers.Embedding:
  """Create an id embedding table; both models use this initialization."""
  # Row 0 is padding; it is masked out of means, so its value never matters.
  return keras.layers.Embedding(
      num_rows, dim, name=name,
      embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05))


def model_inputs(window: int,
                 use_example_age: bool) -> Dict[str, tf.Tensor]:
  """Return the Keras inputs both models take, keyed by feature name.

  `user_id` and `product_id` are int64 [batch], the history lists int64
  [batch, window], and, with `use_example_age`, `example_age` float32
  [batch].
  """
  inputs = {
      features.USER_ID: keras.Input(shape=(), dtype=tf.int64,
                                    name=features.USER_ID),
      features.PRODUCT_ID: keras.Input(shape=(), dtype=tf.int64,
                                       name=features.PRODUCT_ID),
  }
  for name in features.HISTORY_FEATURES:
    inputs[name] = keras.Input(shape=(window,), dtype=tf.int64, name=name)
  if use_example_age:
    inputs[features.EXAMPLE_AGE] = keras.Input(
        shape=(), dtype=tf.float32, name=features.EXAMPLE_AGE)
  return inputs


def user_embedding_table(num_users: int, dim: int,
                         enabled: bool) -> Optional[keras.layers.Embedding]:
  """Return the user id embedding table, or None when it is not used."""
  if not enabled:
    return None
  return embedding_table(num_users, dim, USER_EMBEDDING_LAYER)


def build_model(num_products: int, num_users: int, window: int,
                embedding_dim: int, hidden_units: Sequence[int],
                learning_rate: float, user_id_embedding: bool = True,
                dropout: float = 0.0,
                use_example_age: bool = False) -> keras.Model:
  """Build and compile the classifier.

  Args:
    num_products: Rows of the product table: padding, vocabulary and
      out-of-vocabulary buckets.
    num_users: Rows of the user table, laid out the same way.
    window: Length of each padded history list.
    embedding_dim: Size of both embeddings.
    hidden_units: Sizes of the ReLU layers of the scorer.
    learning_rate: Adam's learning rate.
    user_id_embedding: Whether the user vector includes a per-user
      embedding. Without it the user is described by the history alone,
      which suits users with few events, whose own embedding is trained on
      a handful of examples.
    dropout: Dropout rate after each hidden layer of the scorer, in
      training only.
    use_example_age: Whether the user vector includes `example_age`
      (schemas/features.py). Covington et al. feed it so the model can
      learn how item popularity changes over the training period, and set
      it to 0 when serving to score for the end of that period.

  Returns:
    A compiled model taking int64 inputs `user_id` [batch], `product_id`
    [batch] and the history lists [batch, window], and returning the
    engagement probability [batch, 1].
  """
  inputs = model_inputs(window, use_example_age)
  product_embedding = embedding_table(num_products, embedding_dim,
                                      PRODUCT_EMBEDDING_LAYER)
  user_embedding = user_embedding_table(num_users, embedding_dim,
                                        user_id_embedding)
  user_vector = user_tower(inputs, product_embedding, user_embedding,
                           use_example_age)
  candidate = product_embedding(inputs[features.PRODUCT_ID])

  scorer = CandidateScorer(hidden_units, dropout=dropout, name=SCORER_LAYER)
  logits = scorer([user_vector, candidate])
  probability = keras.layers.Activation(
      "sigmoid", name="probability")(logits[:, tf.newaxis])

  model = keras.Model(inputs=inputs, outputs=probability)
  model.compile(
      optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
      loss=keras.losses.BinaryCrossentropy(),
      weighted_metrics=[
          keras.metrics.AUC(name="auc"),
          keras.metrics.BinaryAccuracy(name="accuracy"),
      ])
  return model


def user_tower(inputs: Dict[str, tf.Tensor],
               product_embedding: keras.layers.Layer,
               user_embedding: Optional[keras.layers.Layer],
               use_example_age: bool = False) -> tf.Tensor:
  """Return the user vector from transformed user features.

  The vector is [batch, 4 * dim]: the user embedding and the three history
  means. Without `user_embedding` it is [batch, 3 * dim]; with
  `use_example_age` one column more, the age, which is 0 when `inputs` has
  none (serving and holdout examples).
  """
  parts = []
  if user_embedding is not None:
    parts.append(user_embedding(inputs[features.USER_ID]))
  masked_mean = MaskedMean()
  for name in features.HISTORY_FEATURES:
    ids = inputs[name]
    parts.append(masked_mean(product_embedding(ids), ids))
  if use_example_age:
    parts.append(example_age_column(inputs, parts[-1]))
  return tf.concat(parts, axis=-1)


def example_age_column(inputs: Dict[str, tf.Tensor],
                       like: tf.Tensor) -> tf.Tensor:
  """Return `example_age` as [batch, 1], or zeros shaped after `like`."""
  if features.EXAMPLE_AGE in inputs:
    age = tf.cast(inputs[features.EXAMPLE_AGE], like.dtype)
    return tf.reshape(age, [-1, 1])
  return tf.zeros_like(like[:, :1])


def user_embedding_layer(model: keras.Model) -> Optional[keras.layers.Layer]:
  """Return the model's user id embedding, or None if it was built without."""
  names = {layer.name for layer in model.layers}
  return (model.get_layer(USER_EMBEDDING_LAYER)
          if USER_EMBEDDING_LAYER in names else None)


def uses_example_age(model: keras.Model) -> bool:
  """Return whether `model` takes the `example_age` input."""
  return features.EXAMPLE_AGE in model.input

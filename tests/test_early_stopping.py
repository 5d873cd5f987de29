"""Early stopping in `task.fit_with_tensorboard` keeps the best epoch."""

import numpy as np
import pytest
import tensorflow as tf

from schemas import features
from trainer import hyperparameters as hyperparameters_lib
from trainer import model as model_lib
from trainer import task

WINDOW = 3
NUM_PRODUCTS = 12
NUM_USERS = 6
EXAMPLES = 256


def _batches(labels_flipped: bool) -> tf.data.Dataset:
  """Examples whose label is 1 for even products; flipped for validation.

  Fitting the training labels makes the validation loss rise, so the best
  validation epoch is an early one.
  """
  rng = np.random.default_rng(0)
  products = rng.integers(1, NUM_PRODUCTS - 1, EXAMPLES)
  labels = (products % 2 == 0).astype(np.int64)
  if labels_flipped:
    labels = 1 - labels
  inputs = {
      features.USER_ID: rng.integers(1, NUM_USERS - 1, EXAMPLES),
      features.PRODUCT_ID: products,
  }
  for name in features.HISTORY_FEATURES:
    inputs[name] = rng.integers(0, NUM_PRODUCTS - 1, (EXAMPLES, WINDOW))
  weights = np.ones(EXAMPLES, np.float32)
  return tf.data.Dataset.from_tensor_slices((inputs, labels, weights)).batch(32)


def test_early_stopping_restores_best_epoch(tmp_path):
  tf.keras.utils.set_random_seed(3)
  model = model_lib.build_model(
      num_products=NUM_PRODUCTS, num_users=NUM_USERS, window=WINDOW,
      embedding_dim=4, hidden_units=[8], learning_rate=0.05)
  params = hyperparameters_lib.Hyperparameters(
      epochs=8, early_stopping_patience=1, early_stopping_metric="loss",
      window=WINDOW)
  vocabulary = [f"p{i}".encode() for i in range(NUM_PRODUCTS - 2)]
  eval_data = _batches(labels_flipped=True)
  history = task.fit_with_tensorboard(model, _batches(labels_flipped=False),
                                      eval_data, str(tmp_path), vocabulary,
                                      params)
  val_losses = history.history["val_loss"]
  assert len(val_losses) < params.epochs
  best = int(np.argmin(val_losses))
  assert best == len(val_losses) - 1 - params.early_stopping_patience
  final = model.evaluate(eval_data, verbose=0, return_dict=True)["loss"]
  np.testing.assert_allclose(final, val_losses[best], rtol=1e-5)


def test_negative_patience_rejected():
  with pytest.raises(ValueError, match="early_stopping_patience"):
    hyperparameters_lib.Hyperparameters(early_stopping_patience=-1)

"""TFX Trainer entry point: `run_fn` trains the selected model and exports it.

`model_type` "classifier" trains trainer/model.py here; "two_tower" hands
over to trainer/two_tower_task.py.
"""

import os
from typing import List, Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from schemas import features
from trainer import export
from trainer import hyperparameters as hyperparameters_lib
from trainer import model as model_lib
from trainer import validation
from transform import preprocessing

PRODUCT_METADATA_FILE = "product_embedding_metadata.tsv"


# Largest training split that `_content_ordered` loads into memory to make
# the example order independent of the files. At about 300 bytes per
# transformed example with a window of 10, this is about 1.5 GB.
MAX_IN_MEMORY_EXAMPLES = 5_000_000
_READ_BATCH = 65_536
# Eval positives per step of the MAP@K validation. The classifier's search
# sizes its item blocks to the batch, so this bounds time, not memory.
VALIDATION_BATCH = 256


def _content_ordered(dataset: tf.data.Dataset, seed: int, batch_size: int
                     ) -> tf.data.Dataset:
  """Return the examples sorted by content, shuffled by seed, and batched.

  ExampleGen passes its records through Beam's Reshuffle, so the record
  order of its output, and of Transform's after it, differs between runs
  of the same input. A seeded shuffle of that order still differs. Sorting
  the examples by their values first makes the shuffled order, and so the
  trained weights, depend on the content and the seed alone.

  Args:
    dataset: Unshuffled (features, label) batches.
    seed: Shuffle seed.
    batch_size: Batch size of the result.

  Returns:
    The reordered (features, label) batches, or None when the split has
    more than MAX_IN_MEMORY_EXAMPLES examples.
  """
  feature_parts, label_parts, count = {}, [], 0
  for batch_features, label in dataset.rebatch(_READ_BATCH):
    count += int(tf.shape(label)[0])
    if count > MAX_IN_MEMORY_EXAMPLES:
      return None
    for name, values in batch_features.items():
      feature_parts.setdefault(name, []).append(values.numpy())
    label_parts.append(label.numpy())
  if not label_parts:
    return None
  columns = {name: np.concatenate(parts) for name, parts in
             feature_parts.items()}
  labels = np.concatenate(label_parts)
  # np.lexsort sorts by the last key first; every column takes part, so
  # only identical examples tie, and their order does not matter.
  keys = []
  for values in [labels] + [columns[name] for name in sorted(columns)]:
    flat = values.reshape(len(labels), -1)
    keys.extend(flat[:, i] for i in range(flat.shape[1]))
  order = np.lexsort(keys[::-1])
  sorted_features = {name: values[order] for name, values in columns.items()}
  return (tf.data.Dataset.from_tensor_slices((sorted_features, labels[order]))
          .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
          .batch(batch_size))


def read_examples(file_pattern: List[str],
                  data_accessor: tfx.components.DataAccessor,
                  tft_output: tft.TFTransformOutput, batch_size: int,
                  positive_weight: float, shuffle: bool,
                  seed: int) -> tf.data.Dataset:
  """Read transformed examples as (features, label, weight) batches.

  With `shuffle`, the order depends only on the examples and the seed when
  the split fits in memory (see `_content_ordered`). A larger split is
  shuffled as read, in an order that varies between runs.
  """
  def read(shuffle_files: bool) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=features.TARGET, num_epochs=1,
            shuffle=shuffle_files, shuffle_seed=seed,
            shuffle_buffer_size=100_000, sloppy_ordering=False,
            reader_num_threads=1),
        tft_output.transformed_metadata.schema)

  dataset = None
  if shuffle:
    dataset = _content_ordered(read(shuffle_files=False), seed, batch_size)
    if dataset is None:
      # NOTE: above MAX_IN_MEMORY_EXAMPLES training is not repeatable from
      # run to run, because ExampleGen's output order is not.
      logging.warning("More than %d training examples: shuffling as read, "
                      "so runs on the same data may train differently.",
                      MAX_IN_MEMORY_EXAMPLES)
      dataset = read(shuffle_files=True)
  else:
    dataset = read(shuffle_files=False)

  def add_weight(batch_features, label):
    label = tf.reshape(label, [-1])
    weight = tf.where(tf.equal(label, 1), positive_weight, 1.0)
    return batch_features, label, weight

  return dataset.map(add_weight).prefetch(tf.data.AUTOTUNE)


def _write_projector_metadata(log_dir: str, vocabulary: List[bytes],
                              num_oov_buckets: int) -> str:
  """Write one label per product table row for TensorBoard's projector."""
  tf.io.gfile.makedirs(log_dir)
  path = os.path.join(log_dir, PRODUCT_METADATA_FILE)
  labels = (["<padding>"] +
            [item.decode("utf-8", "replace") for item in vocabulary] +
            [f"<oov-{i}>" for i in range(num_oov_buckets)])
  with tf.io.gfile.GFile(path, "w") as metadata:
    # A single-column metadata file has no header line.
    metadata.write("\n".join(label.replace("\n", " ") for label in labels))
    metadata.write("\n")
  return PRODUCT_METADATA_FILE


def map_validation(module: export.ExportModule,
                   positives: tf.data.Dataset,
                   params: hyperparameters_lib.Hyperparameters
                   ) -> Optional[validation.CatalogMapCallback]:
  """Return the MAP@K validation callback when early stopping uses it.

  Args:
    module: Export module of the model being trained; its search ranks the
      catalog with the current weights.
    positives: Batches of the eval split's positive features.
    params: Trainer settings.
  """
  if not (params.early_stopping_patience and
          params.early_stopping_metric == "map"):
    return None
  return validation.CatalogMapCallback(
      positives, module.search_catalog, num_rows=module.num_rows,
      vocabulary_size=module.vocabulary_size, k=params.validation_k)


def fit_with_tensorboard(
    model: keras.Model, train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset, log_dir: str, vocabulary: List[bytes],
    params: hyperparameters_lib.Hyperparameters,
    ranking_validation: Optional[validation.CatalogMapCallback] = None
) -> keras.callbacks.History:
  """Train `model`, logging losses, histograms and the product projector.

  With `params.early_stopping_patience` > 0, training stops once the
  validation metric has not improved for that many epochs, and the model
  keeps the weights of its best epoch. The metric is the validation loss,
  or with `early_stopping_metric` "map" the value that
  `ranking_validation` logs.

  Returns:
    Keras' training history, one entry per epoch run.

  Raises:
    ValueError: The metric is "map" but no `ranking_validation` is given.
  """
  metadata_file = _write_projector_metadata(log_dir, vocabulary,
                                            params.num_oov_buckets)
  callbacks = []
  if ranking_validation is not None:
    # First, so that EarlyStopping and TensorBoard see the value it logs.
    callbacks.append(ranking_validation)
  callbacks.append(keras.callbacks.TensorBoard(
      log_dir=log_dir, histogram_freq=1, embeddings_freq=1,
      embeddings_metadata={model_lib.PRODUCT_EMBEDDING_LAYER: metadata_file}))
  if params.early_stopping_patience:
    if params.early_stopping_metric == "map":
      if ranking_validation is None:
        raise ValueError("early_stopping_metric 'map' needs a ranking "
                         "validation callback")
      monitor, mode = validation.metric_name(params.validation_k), "max"
    else:
      monitor, mode = "val_loss", "min"
    callbacks.append(keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=params.early_stopping_patience,
        restore_best_weights=True, verbose=1))
  return model.fit(train_data, validation_data=eval_data,
                   epochs=params.epochs, callbacks=callbacks, verbose=2)


def distribution_strategy() -> tf.distribute.Strategy:
  """Return MirroredStrategy over the visible GPUs, or the default strategy."""
  gpus = tf.config.list_logical_devices("GPU")
  if gpus:
    logging.info("Training with MirroredStrategy on %d GPU(s)", len(gpus))
    return tf.distribute.MirroredStrategy()
  logging.info("No GPU visible; training on the CPU")
  return tf.distribute.get_strategy()


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Train the model that `model_type` selects and export it."""
  # The Vertex AI Trainer adds its job settings to custom_config.
  params = hyperparameters_lib.Hyperparameters.from_custom_config(
      hyperparameters_lib.without_cloud_trainer_keys(
          fn_args.custom_config or {}))
  keras.utils.set_random_seed(params.seed)
  tf.config.experimental.enable_op_determinism()
  if params.model_type == hyperparameters_lib.TWO_TOWER:
    # Imported here because two_tower_task reuses this module's helpers.
    from trainer import two_tower_task  # pylint: disable=g-import-not-at-top
    two_tower_task.run(fn_args, params)
    return
  if params.model_type != hyperparameters_lib.CLASSIFIER:
    raise ValueError(f"model_type must be one of "
                     f"{list(hyperparameters_lib.MODEL_TYPES)}, got "
                     f"{params.model_type!r}")

  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  vocabulary = tft_output.vocabulary_by_name(preprocessing.PRODUCT_VOCABULARY)
  num_products = len(vocabulary) + 1 + params.num_oov_buckets
  num_users = (tft_output.vocabulary_size_by_name(preprocessing.USER_VOCABULARY)
               + 1 + params.num_oov_buckets)
  logging.info("Product rows: %d, user rows: %d", num_products, num_users)

  strategy = distribution_strategy()
  batch_size = params.batch_size * strategy.num_replicas_in_sync
  train_data = read_examples(fn_args.train_files, fn_args.data_accessor,
                             tft_output, batch_size,
                             params.effective_positive_weight, shuffle=True,
                             seed=params.seed)
  eval_data = read_examples(fn_args.eval_files, fn_args.data_accessor,
                            tft_output, batch_size,
                            params.effective_positive_weight, shuffle=False,
                            seed=params.seed)

  with strategy.scope():
    model = model_lib.build_model(
        num_products=num_products, num_users=num_users, window=params.window,
        embedding_dim=params.embedding_dim, hidden_units=params.hidden_units,
        learning_rate=params.learning_rate,
        user_id_embedding=params.user_id_embedding, dropout=params.dropout,
        use_example_age=params.use_example_age)
  model.summary(print_fn=logging.info)

  module = export.ExportModule(
      model, tft_output, num_oov_buckets=params.num_oov_buckets,
      retrieval_k=params.retrieval_k, evaluation_k=params.evaluation_k)
  ranking_validation = map_validation(
      module, validation.positive_batches(eval_data, VALIDATION_BATCH), params)
  fit_with_tensorboard(model, train_data, eval_data, fn_args.model_run_dir,
                       vocabulary, params, ranking_validation)

  export.save_module(module, fn_args.serving_model_dir)
  logging.info("Exported the serving model to %s", fn_args.serving_model_dir)

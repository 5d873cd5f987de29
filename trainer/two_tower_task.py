"""Training and export of the two-tower model, called by `task.run_fn`.

Reads the same transformed splits as the classifier, keeps only positives
(target == 1) because the sampled softmax draws its own negatives, counts
how often each item is a training positive for the logQ correction, trains,
and exports the signatures of trainer/two_tower_export.py.
"""

from typing import List

from absl import logging
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from trainer import hyperparameters as hyperparameters_lib
from trainer import task
from trainer import two_tower_export
from trainer import two_tower_model
from trainer import validation
from transform import preprocessing


def _positives(file_pattern: List[str],
               data_accessor: tfx.components.DataAccessor,
               tft_output: tft.TFTransformOutput, batch_size: int,
               shuffle: bool, seed: int) -> tf.data.Dataset:
  # The classifier's reader, so both models see examples in the same order.
  dataset = task.read_examples(file_pattern, data_accessor, tft_output,
                               batch_size, positive_weight=1.0,
                               shuffle=shuffle, seed=seed)
  # Full batches of positives matter here: the other positives of a batch
  # are the in-batch negatives.
  return validation.positive_batches(dataset, batch_size)


def run(fn_args: tfx.components.FnArgs,
        params: hyperparameters_lib.Hyperparameters) -> None:
  """Train the two-tower model on the train split's positives and export it.

  The caller sets the random seed and op determinism first, as
  `task.run_fn` does.
  """
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  vocabulary = tft_output.vocabulary_by_name(preprocessing.PRODUCT_VOCABULARY)
  if not vocabulary:
    raise ValueError("the product vocabulary is empty; nothing to retrieve")
  num_products = len(vocabulary) + 1 + params.num_oov_buckets
  num_users = (tft_output.vocabulary_size_by_name(preprocessing.USER_VOCABULARY)
               + 1 + params.num_oov_buckets)
  logging.info("Product rows: %d, user rows: %d", num_products, num_users)

  # NOTE: only the CPU path has run. MirroredStrategy on GPUs is untested
  # for this model.
  strategy = task.distribution_strategy()
  # Each replica takes params.batch_size positives and draws its in-batch
  # negatives from them only.
  batch_size = params.batch_size * strategy.num_replicas_in_sync

  counts = two_tower_model.count_positive_items(
      _positives(fn_args.train_files, fn_args.data_accessor, tft_output,
                 batch_size, shuffle=False, seed=params.seed), num_products)
  logging.info("Training positives: %d over %d distinct items",
               counts.sum(), (counts > 0).sum())
  train_data = _positives(fn_args.train_files, fn_args.data_accessor,
                          tft_output, batch_size, shuffle=True,
                          seed=params.seed)
  eval_data = _positives(fn_args.eval_files, fn_args.data_accessor,
                         tft_output, batch_size, shuffle=False,
                         seed=params.seed)

  with strategy.scope():
    model = two_tower_model.build_two_tower_model(
        num_products=num_products, num_users=num_users, window=params.window,
        embedding_dim=params.embedding_dim, hidden_units=params.hidden_units,
        learning_rate=params.learning_rate,
        item_probability=two_tower_model.sampling_probability(counts),
        vocabulary_size=len(vocabulary),
        extra_negatives=params.extra_negatives, seed=params.seed,
        user_id_embedding=params.user_id_embedding,
        use_example_age=params.use_example_age)
  model.summary(print_fn=logging.info)

  module = two_tower_export.TwoTowerExportModule(
      model, tft_output, num_oov_buckets=params.num_oov_buckets,
      retrieval_k=params.retrieval_k, evaluation_k=params.evaluation_k)
  # eval_data contains positives only.
  ranking_validation = task.map_validation(module, eval_data, params)
  task.fit_with_tensorboard(model, train_data, eval_data,
                            fn_args.model_run_dir, vocabulary, params,
                            ranking_validation)

  two_tower_export.save_module(module, fn_args.serving_model_dir)
  logging.info("Exported the two-tower model to %s", fn_args.serving_model_dir)

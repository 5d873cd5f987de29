"""The TFX pipeline definition shared by the local and the Vertex runners.

    ExampleGen (train, eval) -> StatisticsGen -> ExampleValidator -> gate
        ImportSchemaGen (curated schema) --^
    gate -> Transform (vocabularies from train only) -> Trainer
    HoldoutExampleGen (holdout) ------------------------> Evaluator -> Pusher
    latest blessed model -------------------------------^

The holdout examples are a separate artifact because their features differ
from the training examples: one example per user, with the items the user
rated after the holdout cut. The Evaluator ranks the whole catalog for each
of them and blesses the model only when MAP@K passes the gate.
"""

import dataclasses
import hashlib
import os
import posixpath
from typing import Any, Dict, List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from evaluation import tfma_metrics
from pipeline import anomalies_gate
from pipeline import code_version
from pipeline.config import PipelineConfig
from pipeline.config import trainer_settings
from schemas import features
from schemas import schema_files
from trainer import export
from transform import preprocessing

TRANSFORM_FN = "transform.preprocessing.preprocessing_fn"
TRAINER_RUN_FN = "trainer.task.run_fn"
# Split patterns match only data shards, never `_SUCCESS` or hidden files.
SHARD_PATTERN = "part-*"


def map_metric_name(k: int) -> str:
  return f"map@{k}"


def evaluation_config(config: PipelineConfig, catalog_size: Optional[int],
                      popularity_map: Optional[float] = None) -> tfma.EvalConfig:
  """Return the EvalConfig: ranking metrics and the MAP@K gate.

  The gate fails closed: TFMA marks a thresholded metric that is never
  produced as a failed validation, so a model that cannot be evaluated is
  not blessed.

  Args:
    config: The run's configuration.
    catalog_size: Items in the training catalog; sets the reference K.
    popularity_map: MAP@K of the most-popular baseline on the same holdout,
      at the gated K. When given, the floor rises to beat it by the
      configured relative margin.
  """
  settings = config.evaluation
  gate_name = map_metric_name(settings.gated_k(catalog_size))
  floor = settings.effective_floor(popularity_map)
  return tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(signature_name=export.EVALUATION_SIGNATURE,
                         # Holdout examples have no label column; the metric
                         # reads the relevant items from the features.
                         label_key="")
      ],
      slicing_specs=[tfma.SlicingSpec()],
      metrics_specs=[
          tfma.MetricsSpec(
              metrics=[
                  tfma.MetricConfig(class_name="ExampleCount"),
                  tfma.MetricConfig(
                      class_name="RankingMetrics",
                      module=tfma_metrics.__name__,
                      config=tfma_metrics.metric_config_json(
                          list(settings.cutoffs(catalog_size)),
                          code_version.code_version())),
              ],
              thresholds={
                  gate_name:
                      tfma.MetricThreshold(
                          value_threshold=tfma.GenericValueThreshold(
                              lower_bound={"value": floor}),
                          change_threshold=tfma.GenericChangeThreshold(
                              direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                              absolute={
                                  "value": -settings.max_map_regression
                              })),
              })
      ])


def _schema_file(config: PipelineConfig, curated: str, name: str,
                 schema_dir: Optional[str] = None) -> str:
  """Return the schema file for ImportSchemaGen.

  ImportSchemaGen's cache key is the file's path, not its content. So the
  schema is written to a directory named by a hash of its content, and an
  edited curated schema or another window length gets a new path, which
  makes ImportSchemaGen run again.

  `schema_dir` replaces the directory of an unchanged curated schema, for
  runners whose components read it from another file system.
  """
  window = config.examples.window
  if window == features.DEFAULT_WINDOW and schema_dir:
    # NOTE: inside the image the path stays the same when the schema
    # changes, so a cached ImportSchemaGen may keep the old schema there.
    return posixpath.join(schema_dir, os.path.basename(curated))
  schema = schema_files.schema_for_window(curated, window)
  digest = hashlib.sha256(schema.SerializeToString(deterministic=True))
  directory = os.path.join(config.resolved_pipeline_root, "schemas",
                           f"{name}-{digest.hexdigest()[:16]}")
  return schema_files.write_schema(schema, directory)


def create_components(config: PipelineConfig, catalog_size: Optional[int],
                      trainer_factory=None, pusher_factory=None,
                      schema_dir: Optional[str] = None,
                      popularity_map: Optional[float] = None) -> List[Any]:
  """Build the components in run order.

  Args:
    config: The run's configuration.
    catalog_size: Items in the training catalog, from the Spark job's
      summary; it sets the reference K (catalog / 50).
    trainer_factory: Optional callable taking the Trainer's keyword
      arguments and returning a Trainer component, so the Vertex runner can
      use the Vertex AI Trainer. None uses the standard Trainer.
    pusher_factory: Optional callable taking the Pusher's `model` and
      `model_blessing` keyword arguments and returning a Pusher component,
      e.g. the Vertex AI Pusher. None pushes to `config.serving_root`.
    schema_dir: Directory of the curated schema files as the components
      see it, e.g. inside the pipeline image. None uses the files of this
      checkout.
    popularity_map: MAP@K of the most-popular baseline at the gated K on
      the same holdout; see `evaluation_config`.

  Returns:
    The components, in an order valid for LocalDagRunner.
  """
  examples_dir = config.resolved_examples_dir
  example_gen = tfx.components.ImportExampleGen(
      input_base=examples_dir,
      input_config=tfx.proto.Input(splits=[
          tfx.proto.Input.Split(name=features.TRAIN_SPLIT,
                                pattern=f"{features.TRAIN_SPLIT}/{SHARD_PATTERN}"),
          tfx.proto.Input.Split(name=features.EVAL_SPLIT,
                                pattern=f"{features.EVAL_SPLIT}/{SHARD_PATTERN}"),
      ]))
  holdout_gen = tfx.components.ImportExampleGen(
      input_base=examples_dir,
      input_config=tfx.proto.Input(splits=[
          tfx.proto.Input.Split(
              name=features.HOLDOUT_SPLIT,
              pattern=f"{features.HOLDOUT_SPLIT}/{SHARD_PATTERN}"),
      ]),
      # With a single input split ExampleGen would re-split it into train
      # and eval by hash; one output bucket keeps it whole.
      output_config=tfx.proto.Output(
          split_config=tfx.proto.SplitConfig(splits=[
              tfx.proto.SplitConfig.Split(name=features.HOLDOUT_SPLIT,
                                          hash_buckets=1)
          ]))).with_id("HoldoutExampleGen")

  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs["examples"])
  schema_gen = tfx.components.ImportSchemaGen(
      schema_file=_schema_file(config, schema_files.EXAMPLES_SCHEMA,
                               "examples", schema_dir))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"])
  gate = anomalies_gate.AnomaliesGate(
      anomalies=example_validator.outputs["anomalies"])

  holdout_schema_gen = tfx.components.ImportSchemaGen(
      schema_file=_schema_file(config, schema_files.HOLDOUT_SCHEMA, "holdout",
                               schema_dir)).with_id("HoldoutSchemaGen")

  params = trainer_settings(config)
  cutoffs = config.evaluation.cutoffs(catalog_size)
  params = dataclasses.replace(params, evaluation_k=max(cutoffs),
                               code_version=code_version.code_version())

  transform = tfx.components.Transform(
      examples=example_gen.outputs["examples"],
      schema=schema_gen.outputs["schema"],
      preprocessing_fn=TRANSFORM_FN,
      splits_config=tfx.proto.SplitsConfig(
          analyze=[features.TRAIN_SPLIT],
          transform=[features.TRAIN_SPLIT, features.EVAL_SPLIT]),
      custom_config={
          preprocessing.WINDOW_KEY: config.examples.window,
          preprocessing.NUM_OOV_BUCKETS_KEY: config.transform.num_oov_buckets,
          preprocessing.MIN_ITEM_COUNT_KEY: config.transform.min_item_count,
          # Not read by preprocessing_fn: it makes TFX re-run Transform
          # after a code change (see pipeline/code_version.py).
          "code_version": code_version.code_version(),
      })
  transform.add_upstream_node(gate)

  trainer_args: Dict[str, Any] = dict(
      run_fn=TRAINER_RUN_FN,
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      schema=schema_gen.outputs["schema"],
      train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
      eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
      custom_config=params.to_custom_config())
  trainer = (trainer_factory or tfx.components.Trainer)(**trainer_args)

  model_resolver = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing)).with_id(
              "latest_blessed_model_resolver")

  evaluator = tfx.components.Evaluator(
      examples=holdout_gen.outputs["examples"],
      example_splits=[features.HOLDOUT_SPLIT],
      model=trainer.outputs["model"],
      baseline_model=model_resolver.outputs["model"],
      schema=holdout_schema_gen.outputs["schema"],
      eval_config=evaluation_config(config, catalog_size, popularity_map))

  pusher_args: Dict[str, Any] = dict(
      model=trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"])
  if pusher_factory:
    pusher = pusher_factory(**pusher_args)
  else:
    pusher = tfx.components.Pusher(
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.resolved_serving_root)),
        **pusher_args)

  return [
      example_gen, holdout_gen, statistics_gen, schema_gen, example_validator,
      gate, holdout_schema_gen, transform, trainer, model_resolver, evaluator,
      pusher
  ]


def create_pipeline(config: PipelineConfig, catalog_size: Optional[int],
                    metadata_connection_config=None,
                    trainer_factory=None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    pusher_factory=None,
                    schema_dir: Optional[str] = None,
                    popularity_map: Optional[float] = None
                    ) -> tfx.dsl.Pipeline:
  """Build the pipeline for a runner.

  Args:
    config: The run's configuration.
    catalog_size: Items in the training catalog (from the Spark summary).
    metadata_connection_config: ML Metadata connection; None for runners
      that bring their own store, as Vertex AI does.
    trainer_factory: See `create_components`.
    beam_pipeline_args: Overrides `config.beam_pipeline_args`, e.g. with
      Dataflow options.
    pusher_factory: See `create_components`.
    schema_dir: See `create_components`.
    popularity_map: See `create_components`.
  """
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.resolved_pipeline_root,
      components=create_components(config, catalog_size, trainer_factory,
                                   pusher_factory, schema_dir, popularity_map),
      enable_cache=True,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args if beam_pipeline_args
                              is not None else config.beam_pipeline_args))

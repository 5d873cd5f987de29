"""Main command: ratings file in, validated and pushed model out.

    python -m pipeline.run --ratings ratings.csv --layout movielens
    python -m pipeline.run                      # synthetic data, no download
    python -m pipeline.run --config my_run.json

Runs the Spark job, which is skipped when its output is current, then the
TFX pipeline with LocalDagRunner, a SQLite ML Metadata store and Beam's
DirectRunner. It prints where the model, the evaluation and the TensorBoard
logs are, the ranking metrics, whether the model was blessed and pushed, and
the model beside the baselines.
"""

import argparse
import dataclasses
import os
import sys
import time
from typing import List, Optional

from absl import logging

from pipeline import config as config_lib
from pipeline import examples_stage
from pipeline import run_report
from spark import ratings_reader

# Size of the synthetic ratings used when no file is given, relative to
# Amazon Luxury Beauty (574,628 rows): a tenth, so the command finishes in
# minutes on a laptop.
DEFAULT_SYNTHETIC_SCALE = 0.1


def parse_args(argv: List[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m pipeline.run",
      description="Run the candidate-generation pipeline end to end locally.")
  parser.add_argument(
      "--ratings", help="Ratings CSV file. Without it, a deterministic "
      "synthetic data set shaped like Amazon Luxury Beauty is generated.")
  parser.add_argument(
      "--layout", choices=("amazon", "movielens"),
      help="Column layout of --ratings: 'amazon' (no header, "
      "item,user,rating,timestamp) or 'movielens' (header "
      "userId,movieId,rating,timestamp). Default: the configuration's.")
  parser.add_argument("--config", help="JSON configuration file; see "
                      "pipeline/config.py for its sections.")
  parser.add_argument("--name", help="Pipeline name; outputs go to "
                      "OUTPUT_ROOT/NAME/.")
  parser.add_argument("--output-root", help="Directory for all outputs "
                      "(default: runs).")
  parser.add_argument(
      "--synthetic-scale", type=float, default=DEFAULT_SYNTHETIC_SCALE,
      help="Size of the synthetic ratings used without --ratings, relative "
      "to Amazon Luxury Beauty's 574,628 rows.")
  return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
  config = (config_lib.load(args.config) if args.config
            else config_lib.PipelineConfig())
  overrides = {}
  if args.ratings:
    overrides["ratings_path"] = args.ratings
  if args.layout:
    overrides["layout"] = args.layout
  if args.name:
    overrides["pipeline_name"] = args.name
  if args.output_root:
    overrides["output_root"] = args.output_root
  return dataclasses.replace(config, **overrides)


def synthetic_ratings(config: config_lib.PipelineConfig, scale: float) -> str:
  """Write (once) and return a synthetic Amazon-layout ratings file."""
  from spark import synthetic_ratings as synthetic  # pylint: disable=g-import-not-at-top

  if scale <= 0:
    raise ValueError(f"--synthetic-scale must be positive, got {scale}")
  path = os.path.join(config.output_root, config.pipeline_name,
                      f"synthetic_ratings_scale{scale:g}_seed"
                      f"{config.examples.seed}.csv")
  if not os.path.exists(path):
    # Written under a temporary name so an interrupted run leaves no
    # truncated file that a later run would take as complete.
    partial = f"{path}.partial"
    synthetic.write_csv(partial, scale=scale, seed=config.examples.seed)
    os.replace(partial, path)
  return path


def popularity_map(config: config_lib.PipelineConfig,
                   catalog_size: int) -> float:
  """Return MAP@K of the most-popular baseline at the gated K.

  It is computed on the same holdout users, catalog and seen-item exclusion
  as the model, before the pipeline runs, so the Evaluator's floor can
  require the model to beat it.
  """
  # Imported here: the baselines read TFRecords with TensorFlow.
  from baselines import data as baseline_data  # pylint: disable=g-import-not-at-top
  from baselines import runner as baseline_runner  # pylint: disable=g-import-not-at-top
  from evaluation import report as evaluation_report  # pylint: disable=g-import-not-at-top

  k = config.evaluation.gated_k(catalog_size)
  examples_dir = config.resolved_examples_dir
  users = baseline_data.read_holdout(examples_dir)
  settings = dataclasses.replace(config.baselines,
                                 methods=(baseline_runner.MOST_POPULAR,))
  run = baseline_runner.run_baselines(examples_dir, k, settings, users=users)
  metrics = evaluation_report.evaluate_rankings(
      run.rankings[baseline_runner.MOST_POPULAR], users, [k], catalog_size)
  return metrics[evaluation_report.OVERALL][f"map@{k}"]


def run_local(config: config_lib.PipelineConfig,
              catalog_size: Optional[int],
              popularity: Optional[float] = None) -> None:
  """Run the TFX pipeline with LocalDagRunner and a SQLite store."""
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top

  os.makedirs(os.path.dirname(os.path.abspath(config.resolved_metadata_path)),
              exist_ok=True)
  metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      config.resolved_metadata_path)
  tfx.orchestration.LocalDagRunner().run(
      pipeline_lib.create_pipeline(config, catalog_size,
                                   metadata_connection_config=metadata,
                                   popularity_map=popularity))


def _floor_origin(config: config_lib.PipelineConfig, popularity: float) -> str:
  lift = config.evaluation.min_lift_over_popularity
  if lift is None:
    return ", the configured floor"
  return (f", the larger of the floor {config.evaluation.map_floor} and "
          f"most-popular's {popularity:.4f} x {1 + lift:g}")


def print_report(config: config_lib.PipelineConfig,
                 report: run_report.RunReport, catalog_size: int,
                 popularity: float) -> None:
  gate_k = config.evaluation.gated_k(catalog_size)
  floor = config.evaluation.effective_floor(popularity)
  lines = [
      "",
      f"Pipeline '{config.pipeline_name}' finished.",
      f"  model:        {report.model_dir}",
      f"  evaluation:   {report.evaluation_dir}",
      f"  tensorboard:  tensorboard --logdir {report.model_run_dir}",
      f"  blessed:      {report.blessed} (gate: map@{gate_k} >= {floor:.4f}"
      f"{_floor_origin(config, popularity)}, and no worse than the latest "
      "blessed model by more than "
      f"{config.evaluation.max_map_regression})",
      f"  pushed to:    {report.pushed_dir or 'not pushed'}",
      f"  holdout users ranked: "
      f"{int(report.metrics.get('ranked_users', 0))}, catalog: {catalog_size}",
      "",
      run_report.format_metrics_table(
          report.metrics, ["map", "recall", "ndcg", "hit_rate"]),
      "",
      "Component wall time (s):",
  ]
  for component, seconds in sorted(report.component_seconds.items()):
    state = report.component_states.get(component, "")
    lines.append(f"  {component:34s} {seconds:8.1f}  {state}")
  print("\n".join(lines))


class NoHoldoutUsersError(ValueError):
  """Error raised when the examples contain no user to evaluate."""


def print_examples_summary(summary: dict) -> None:
  """Print what the Spark job kept, dropped and set aside."""
  rejected = {kind: count for kind, count in
              summary.get("rejected_by_kind", {}).items() if count}
  lines = [
      f"Examples: {summary['rows_read']} rows read, "
      f"{summary['rows_rejected']} rejected"
      f"{f' {rejected}' if rejected else ''}, "
      f"{summary['duplicates_dropped']} exact duplicates dropped; "
      f"{summary['users']} users, catalog of {summary['catalog_items']} items; "
      f"{summary['holdout_users']} holdout users "
      f"({summary['cold_start_users']} cold-start users left out).",
  ]
  if summary["rows_rejected"]:
    lines.append(f"  Rejected rows and reasons: "
                 f"{summary['output_path']}/rejects/")
  print("\n".join(lines))


def check_holdout(summary: dict) -> None:
  if not summary.get("holdout_users"):
    raise NoHoldoutUsersError(
        f"the ratings in {summary.get('input_path')} leave no holdout user: "
        f"{summary.get('cold_start_users', 0)} users rated only after the "
        "holdout cut and none rated both before and after it, so no model "
        "can be evaluated. Use more data, a lower examples.holdout_quantile, "
        'or examples.holdout "per_user" in the --config file.')


def run(args: argparse.Namespace, config: config_lib.PipelineConfig) -> int:
  """Run every stage; see the module docstring."""
  ratings_path = config.ratings_path or synthetic_ratings(
      config, args.synthetic_scale)
  if not config.ratings_path:
    config = dataclasses.replace(config, layout="amazon")
  # Checked before the input is fingerprinted, for the job's clear message
  # about a missing or empty file.
  ratings_reader.check_input_path(ratings_path)

  started = time.monotonic()
  summary = examples_stage.prepare_examples(config, ratings_path)
  spark_seconds = time.monotonic() - started
  print_examples_summary(summary)
  check_holdout(summary)
  catalog_size = int(summary["catalog_items"])

  popularity = popularity_map(config, catalog_size)
  run_local(config, catalog_size, popularity)
  report = run_report.read_report(config.resolved_metadata_path)
  report.component_seconds["SparkExampleJob"] = round(spark_seconds, 1)
  print_report(config, report, catalog_size, popularity)
  if config.evaluation.write_report:
    print_comparison(config, report, catalog_size)
  return 0


def main(argv: Optional[List[str]] = None) -> int:
  logging.set_verbosity(logging.INFO)
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    config = resolve_config(args)
  except (ValueError, TypeError, FileNotFoundError) as error:
    # Unknown keys, values of the wrong type or out of range, missing file.
    print(f"error: invalid configuration: {error}", file=sys.stderr)
    return 2
  try:
    return run(args, config)
  except ratings_reader.RejectedRowsError as error:
    print(f"error: {error}\nWith python -m pipeline.run, raise the limit "
          "with examples.max_reject_fraction in the --config file.",
          file=sys.stderr)
  except (ratings_reader.InputDataError, NoHoldoutUsersError) as error:
    print(f"error: {error}", file=sys.stderr)
  return 2


def print_comparison(config: config_lib.PipelineConfig,
                     report: run_report.RunReport, catalog_size: int) -> None:
  """Write the model-versus-baselines report and print its overall table."""
  from evaluation import report as evaluation_report  # pylint: disable=g-import-not-at-top

  comparison = evaluation_report.evaluate_and_write(
      config.resolved_examples_dir, config.resolved_report_dir,
      ks=config.evaluation.cutoffs(catalog_size), settings=config.baselines,
      saved_model_dir=report.model_dir)
  markdown = evaluation_report.format_markdown(comparison)
  overall = markdown.split("\n### History length")[0]
  print(f"\nModel and baselines on the same holdout (all segments: "
        f"{config.resolved_report_dir}/report.md):\n")
  print(overall)


if __name__ == "__main__":
  exit_code = main()
  sys.stdout.flush()
  sys.stderr.flush()
  # TensorFlow 2.16 objects still alive at interpreter teardown print
  # "Exception ignored in AtomicFunction.__del__" tracebacks by the dozen.
  # Everything is written and the metadata store is committed by now, so
  # skipping teardown loses nothing and keeps the report readable.
  os._exit(exit_code)  # pylint: disable=protected-access

"""Train trainer variants on a finished run's data and rank its holdout.

A hyperparameter search through the whole pipeline repeats ingestion,
statistics and Transform for every variant, although only the Trainer's
settings differ. This command reuses the newest Transform output of one
finished local run, trains each variant with the Trainer's own `run_fn`,
and ranks the run's holdout users with the exported `rank_for_evaluation`
signature, as the report does:

    python -m trainer.search --run runs/NAME --variants variants.json \
        --output search/ [--config the run's configuration JSON]

`variants.json` maps a variant name to the trainer settings it changes,
for example {"base": {}, "no-user-id": {"user_id_embedding": false}}.
Settings fixed by other sections (window, out-of-vocabulary buckets,
negatives per positive) come from `--config` and cannot be changed here:
they need a new Spark job or Transform, so a new pipeline run.

The command prints, and writes to OUTPUT/results.json, MAP, Recall and
NDCG at the report's cut-offs, the training seconds, and the same metrics
for the most-popular and co-occurrence baselines on the same users.
"""

import argparse
import dataclasses
import glob
import json
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from absl import logging

from baselines import data
from baselines import runner
from evaluation import report
from pipeline import config as config_lib
from trainer import hyperparameters as hyperparameters_lib

RESULTS_FILE = "results.json"
# Settings that a variant may not change; see the module docstring.
FIXED_SETTINGS = ("window", "num_oov_buckets", "negatives_per_positive",
                  "code_version")
REFERENCE_BASELINES = (runner.MOST_POPULAR, runner.COOCCURRENCE)


@dataclasses.dataclass(frozen=True)
class RunData:
  """Paths of one finished run that the search reads."""

  examples_dir: str
  transform_graph: str
  train_files: List[str]
  eval_files: List[str]


def _newest_artifact(pipeline_root: str, component: str, output: str) -> str:
  """Return the artifact folder with the highest execution id."""
  parent = os.path.join(pipeline_root, component, output)
  ids = [name for name in (os.listdir(parent) if os.path.isdir(parent) else [])
         if name.isdigit()]
  if not ids:
    raise FileNotFoundError(
        f"no {component} output in {parent}; run the pipeline once with "
        "this configuration first")
  return os.path.join(parent, max(ids, key=int))


def find_run_data(config: config_lib.PipelineConfig) -> RunData:
  """Locate the Spark output and the newest Transform output of a run."""
  root = config.resolved_pipeline_root
  examples = _newest_artifact(root, "Transform", "transformed_examples")
  splits = {}
  for split in ("train", "eval"):
    files = sorted(glob.glob(os.path.join(examples, f"Split-{split}", "*")))
    if not files:
      raise FileNotFoundError(f"no transformed {split} files under {examples}")
    splits[split] = files
  return RunData(
      examples_dir=config.resolved_examples_dir,
      transform_graph=_newest_artifact(root, "Transform", "transform_graph"),
      train_files=splits["train"], eval_files=splits["eval"])


def load_variants(path: str) -> Dict[str, Dict[str, Any]]:
  """Read the variants file and reject settings the run fixes."""
  variants = config_lib.read_json_object(path, "variants file")
  if not variants:
    raise ValueError(f"{path} must contain a non-empty JSON object of "
                     "variant name -> trainer settings")
  for name, settings in variants.items():
    if not isinstance(settings, dict):
      raise ValueError(f"variant {name!r} in {path} must be an object of "
                       f"trainer settings, got {settings!r}")
    fixed = sorted(set(settings) & set(FIXED_SETTINGS))
    if fixed:
      raise ValueError(
          f"variant {name!r} in {path} changes {fixed}, which the run's "
          "examples and Transform output fix; run the pipeline instead")
  return variants


def variant_params(base: hyperparameters_lib.Hyperparameters,
                   settings: Mapping[str, Any]
                   ) -> hyperparameters_lib.Hyperparameters:
  """Return `base` with a variant's settings, validated like the pipeline's."""
  values = base.to_custom_config()
  values.update(settings)
  return hyperparameters_lib.Hyperparameters.from_custom_config(values)


def _metrics_row(metrics: Mapping[str, float], ks: Sequence[int]
                 ) -> Dict[str, float]:
  keys = [f"{metric}@{k}" for k in ks for metric in ("map", "recall", "ndcg")]
  return {key: metrics[key] for key in keys if key in metrics}


def train_variant(run: RunData, params: hyperparameters_lib.Hyperparameters,
                  output_dir: str) -> str:
  """Train and export one variant with the Trainer's run_fn.

  Returns:
    The serving model folder.
  """
  # Imported here: TensorFlow and TFX load slowly and --help needs neither.
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from tfx_bsl.public import tfxio  # pylint: disable=g-import-not-at-top
  from trainer import task  # pylint: disable=g-import-not-at-top

  def dataset_factory(file_pattern, options, schema):
    return tfxio.TFExampleRecord(file_pattern,
                                 schema=schema).TensorFlowDataset(options)

  serving_dir = os.path.join(output_dir, "serving")
  fn_args = tfx.components.FnArgs(
      train_files=run.train_files, eval_files=run.eval_files,
      transform_output=run.transform_graph,
      data_accessor=tfx.components.DataAccessor(
          tf_dataset_factory=dataset_factory, record_batch_factory=None,
          data_view_decode_fn=None),
      serving_model_dir=serving_dir,
      model_run_dir=os.path.join(output_dir, "logs"),
      custom_config=params.to_custom_config())
  task.run_fn(fn_args)
  return serving_dir


def search(config: config_lib.PipelineConfig,
           variants: Mapping[str, Mapping[str, Any]], output_dir: str,
           only_missing: bool = True) -> Dict[str, Dict[str, Any]]:
  """Train, rank and evaluate every variant; return results by name.

  Results accumulate in OUTPUT/results.json, so with `only_missing` a
  stopped search resumes with the variants it has not finished.
  """
  run = find_run_data(config)
  summary = data.read_summary(run.examples_dir)
  catalog_size = int(summary["catalog_items"])
  ks = config.evaluation.cutoffs(catalog_size)
  # The pipeline's Trainer gets the same evaluation K (pipeline/pipeline.py).
  base = dataclasses.replace(config_lib.trainer_settings(config),
                             evaluation_k=max(ks))
  # Check every variant before any training, so a typo in the last one
  # does not surface after hours of work.
  params_by_name = {}
  for name, settings in variants.items():
    try:
      params_by_name[name] = variant_params(base, settings)
    except (TypeError, ValueError) as error:
      raise ValueError(f"variant {name!r}: {error}") from None

  records = data.read_holdout_records(run.examples_dir)
  users = [data.parse_holdout(record) for record in records]
  os.makedirs(output_dir, exist_ok=True)
  results_path = os.path.join(output_dir, RESULTS_FILE)
  results: Dict[str, Dict[str, Any]] = {}
  if os.path.exists(results_path):
    with open(results_path, encoding="utf-8") as results_file:
      results = json.load(results_file)

  def save():
    with open(results_path, "w", encoding="utf-8") as results_file:
      json.dump(results, results_file, indent=2, sort_keys=True)
      results_file.write("\n")

  baseline_settings = dataclasses.replace(config.baselines,
                                          methods=REFERENCE_BASELINES)
  baseline_run = runner.run_baselines(run.examples_dir, max(ks),
                                      baseline_settings, users=users)
  for method, rankings in baseline_run.rankings.items():
    metrics = report.evaluate_rankings(rankings, users, ks, catalog_size)
    results[f"baseline:{method}"] = {
        "settings": {}, "train_seconds": None,
        "metrics": _metrics_row(metrics[report.OVERALL], ks)}
  save()

  for name, settings in variants.items():
    if only_missing and name in results:
      logging.info("Variant %s already in %s; skipped.", name, results_path)
      continue
    params = params_by_name[name]
    started = time.monotonic()
    model_dir = train_variant(run, params, os.path.join(output_dir, name))
    seconds = time.monotonic() - started
    rankings = report.model_rankings(model_dir, records,
                                     min_k=min(max(ks), catalog_size))
    metrics = report.evaluate_rankings(rankings, users, ks, catalog_size)
    results[name] = {"settings": dict(settings),
                     "train_seconds": round(seconds, 1),
                     "metrics": _metrics_row(metrics[report.OVERALL], ks)}
    save()
    logging.info("Variant %s: %s", name, results[name])
  return results


def format_table(results: Mapping[str, Mapping[str, Any]],
                 columns: Sequence[str]) -> str:
  """Return a Markdown table, one row per variant."""
  lines = ["| variant | " + " | ".join(columns) + " | train s |",
           "|" + "---|" * (len(columns) + 2)]
  for name, result in results.items():
    metrics = result["metrics"]
    cells = [f"{metrics[c]:.4f}" if c in metrics else "n/a" for c in columns]
    seconds = result.get("train_seconds")
    lines.append(f"| {name} | " + " | ".join(cells) +
                 f" | {'' if seconds is None else seconds} |")
  return "\n".join(lines)


def parse_args(argv: List[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m trainer.search",
      description="Train trainer variants on a finished local run's "
      "Transform output and rank its holdout users.")
  parser.add_argument("--run", required=True,
                      help="Folder of the finished run: OUTPUT_ROOT/NAME.")
  parser.add_argument("--config", help="The run's JSON configuration, if "
                      "it had one.")
  parser.add_argument("--variants", required=True,
                      help="JSON object: variant name -> trainer settings.")
  parser.add_argument("--output", required=True,
                      help="Folder for models and results.json.")
  parser.add_argument("--rerun", action="store_true",
                      help="Train variants already in results.json again.")
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  logging.set_verbosity(logging.INFO)
  args = parse_args(sys.argv[1:] if argv is None else argv)
  config = (config_lib.load(args.config) if args.config
            else config_lib.PipelineConfig())
  run_dir = os.path.abspath(args.run)
  config = dataclasses.replace(
      config, output_root=os.path.dirname(run_dir),
      pipeline_name=os.path.basename(run_dir))
  try:
    variants = load_variants(args.variants)
    results = search(config, variants, args.output,
                     only_missing=not args.rerun)
  except (FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  catalog_size = int(data.read_summary(
      config.resolved_examples_dir)["catalog_items"])
  gated = config.evaluation.gated_k(catalog_size)
  print(format_table(results, ["map@10", "recall@50", "ndcg@10",
                               f"map@{gated}", f"recall@{gated}"]))
  return 0


if __name__ == "__main__":
  sys.exit(main())

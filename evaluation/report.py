"""Compare the model and the baselines on the same holdout users.

For every method this computes MAP@K, Recall@K, NDCG@K and hit rate@K (the
conventions of `evaluation.ranking_metrics`) and catalog coverage@K, over
all holdout users and per history-length segment, and writes:

    report.json        every number, machine-readable
    report.md          the same as Markdown tables
    recall_at_k.png    Recall@K against K, one line per method

Coverage@K is the number of distinct items in any user's top K divided by
the catalog size; a method that shows everyone the same few items scores
low on it however accurate it is.

    python -m evaluation.report --examples runs/x/examples --output report/ \
        [--saved-model runs/x/serving/1234]
"""

import argparse
import json
import os
import sys
from typing import Dict, List, Mapping, Optional, Sequence

from absl import logging
import numpy as np

from baselines import data
from baselines import runner
from evaluation import ranking_metrics
from evaluation import segments

COVERAGE = "coverage"
USERS = "users"
OVERALL = "overall"
MODEL = "model"
JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"
PLOT_FILE = "recall_at_k.png"
# Signature and output of the exported model that rank the whole catalog.
EVALUATION_SIGNATURE = "rank_for_evaluation"
TOP_K_IDS = "top_k_ids"
# Holdout examples per call of the model's signature.
DEFAULT_MODEL_BATCH = 256
_TABLE_METRICS = ranking_metrics.METRIC_NAMES + (COVERAGE,)


def _group_metrics(rankings: Mapping[str, Sequence[str]],
                   users: Sequence[data.HoldoutExample], ks: Sequence[int],
                   catalog_size: int) -> Dict[str, float]:
  sums = ranking_metrics.MetricSums()
  recommended = {k: set() for k in ks}
  for user in users:
    ranked = rankings[user.user_id]
    sums.add_user(ranked, user.relevant, ks)
    for k in ks:
      recommended[k].update(ranked[:k])
  values = sums.means()
  for k in ks:
    values[ranking_metrics.metric_key(COVERAGE, k)] = (
        len(recommended[k]) / catalog_size)
  values[USERS] = sums.users
  return values


def evaluate_rankings(rankings: Mapping[str, Sequence[str]],
                      users: Sequence[data.HoldoutExample], ks: Sequence[int],
                      catalog_size: int) -> Dict[str, Dict[str, float]]:
  """Compute every metric overall and per history-length segment.

  Args:
    rankings: User id -> ranked item ids, at least max(ks) long unless the
      catalog ran out.
    users: Holdout users; users with no relevant item are left out of the
      means (ranking_metrics.MetricSums skips them) and of `users`.
    ks: Cut-offs.
    catalog_size: Denominator of coverage@K.

  Returns:
    {"overall": metrics, "<segment>": metrics, ...}; metrics map keys such
    as "map@10" and "coverage@10" to values and "users" to the user count.
    A segment without users has only {"users": 0}.

  Raises:
    ValueError: A user has no ranked list, or catalog_size is not positive.
  """
  if catalog_size <= 0:
    raise ValueError(f"catalog_size must be positive, got {catalog_size}")
  missing = [user.user_id for user in users if user.user_id not in rankings]
  if missing:
    raise ValueError(f"{len(missing)} holdout users have no ranked list, "
                     f"e.g. {missing[:3]}; rank every holdout user")
  by_segment = {name: [] for name in segments.SEGMENT_NAMES}
  for user in users:
    by_segment[segments.segment_of(user.history_length)].append(user)
  result = {OVERALL: _group_metrics(rankings, users, ks, catalog_size)}
  for name, members in by_segment.items():
    result[name] = (_group_metrics(rankings, members, ks, catalog_size)
                    if members else {USERS: 0})
  return result


def model_rankings(saved_model_dir: str, records: Sequence[bytes],
                   min_k: int, batch_size: int = DEFAULT_MODEL_BATCH
                   ) -> Dict[str, List[str]]:
  """Rank the catalog for holdout users with an exported model.

  Calls the SavedModel's `rank_for_evaluation` signature, which takes
  serialized holdout examples and returns `top_k_ids` [batch, K] with b""
  padding where fewer than K items remain.

  Args:
    saved_model_dir: Directory of the serving SavedModel.
    records: Serialized holdout `tf.train.Example`s.
    min_k: Smallest acceptable K, normally max of the metric cut-offs.
    batch_size: Examples per signature call.

  Returns:
    User id -> ranked item ids, padding removed.

  Raises:
    ValueError: The signature is missing or returns fewer than `min_k` ids
      per user, which would silently cut the metrics at a smaller K.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  loaded = tf.saved_model.load(saved_model_dir)
  if EVALUATION_SIGNATURE not in loaded.signatures:
    raise ValueError(f"{saved_model_dir} has no '{EVALUATION_SIGNATURE}' "
                     f"signature (found {sorted(loaded.signatures)})")
  signature = loaded.signatures[EVALUATION_SIGNATURE]
  input_name = next(iter(signature.structured_input_signature[1]))
  rankings: Dict[str, List[str]] = {}
  for start in range(0, len(records), batch_size):
    batch = list(records[start:start + batch_size])
    ids = signature(**{input_name: tf.constant(batch)})[TOP_K_IDS].numpy()
    if ids.shape[1] < min_k:
      raise ValueError(
          f"the model returns {ids.shape[1]} ids per user but the report "
          f"needs {min_k}; export it with an evaluation K of at least {min_k}")
    for record, row in zip(batch, ids):
      user = data.parse_holdout(record).user_id
      rankings[user] = [item.decode("utf-8") for item in row if item]
  return rankings


def build_report(rankings_by_method: Mapping[str, Mapping[str, Sequence[str]]],
                 users: Sequence[data.HoldoutExample], ks: Sequence[int],
                 catalog_size: int,
                 details: Optional[Mapping[str, object]] = None
                 ) -> Dict[str, object]:
  """Evaluate every method on the same users; return the report dict."""
  ks = sorted(set(int(k) for k in ks))
  return {
      "ks": ks,
      "catalog_size": catalog_size,
      "holdout_users": len(users),
      "segments": {name: {"min_history": low, "max_history": high}
                   for name, low, high in segments.SEGMENTS},
      "methods": {
          name: evaluate_rankings(rankings, users, ks, catalog_size)
          for name, rankings in rankings_by_method.items()},
      "details": dict(details or {}),
  }


def _format_value(metrics: Mapping[str, float], key: str) -> str:
  return f"{metrics[key]:.4f}" if key in metrics else "n/a"


def format_markdown(report: Mapping[str, object]) -> str:
  """Return one Markdown table per user group, rows by K then method."""
  headers = ["K", "method"] + list(_TABLE_METRICS)
  lines = [f"Catalog: {report['catalog_size']} items. Holdout users: "
           f"{report['holdout_users']}.", ""]
  for group in (OVERALL,) + segments.SEGMENT_NAMES:
    title = ("All users" if group == OVERALL
             else f"History length {group}")
    counts = {name: result[group][USERS]
              for name, result in report["methods"].items()}
    users = max(counts.values(), default=0)
    lines += [f"### {title} ({users} users)", ""]
    if not users:
      lines += ["No holdout user falls in this group.", ""]
      continue
    lines += ["| " + " | ".join(headers) + " |",
              "|" + "---|" * len(headers)]
    for k in report["ks"]:
      for name, result in report["methods"].items():
        metrics = result[group]
        cells = [_format_value(metrics, ranking_metrics.metric_key(metric, k))
                 for metric in _TABLE_METRICS]
        lines.append(f"| {k} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def plot_recall(report: Mapping[str, object], path: str) -> None:
  """Plot overall Recall@K against K, one line per method, to a PNG file."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(6, 4))
  ks = report["ks"]
  for name, result in report["methods"].items():
    overall = result[OVERALL]
    values = [overall.get(ranking_metrics.metric_key(ranking_metrics.RECALL,
                                                     k), np.nan) for k in ks]
    axes.plot(ks, values, marker="o", label=name)
  axes.set_xlabel("K")
  axes.set_ylabel("Recall@K")
  axes.set_title(f"Recall@K, {report['holdout_users']} holdout users")
  axes.grid(True, alpha=0.3)
  axes.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  pyplot.close(figure)


def write_report(report: Mapping[str, object], report_dir: str) -> Dict[str, str]:
  """Write report.json, report.md and recall_at_k.png; return their paths."""
  os.makedirs(report_dir, exist_ok=True)
  paths = {
      "json": os.path.join(report_dir, JSON_FILE),
      "markdown": os.path.join(report_dir, MARKDOWN_FILE),
      "plot": os.path.join(report_dir, PLOT_FILE),
  }
  with open(paths["json"], "w", encoding="utf-8") as json_file:
    json.dump(report, json_file, indent=2, sort_keys=True)
    json_file.write("\n")
  with open(paths["markdown"], "w", encoding="utf-8") as markdown_file:
    markdown_file.write(format_markdown(report))
  plot_recall(report, paths["plot"])
  return paths


def evaluate_and_write(examples_dir: str, report_dir: str,
                       ks: Optional[Sequence[int]] = None,
                       settings: runner.BaselineSettings = runner.BaselineSettings(),
                       saved_model_dir: Optional[str] = None,
                       spark=None) -> Dict[str, object]:
  """Run the baselines (and the model), evaluate them and write the report.

  Args:
    examples_dir: Output directory of the Spark job.
    report_dir: Where the report files go; created when missing.
    ks: Metric cut-offs. None uses the pipeline's defaults: 10, 50, 100 and
      catalog size / 50.
    settings: Baseline settings.
    saved_model_dir: Serving SavedModel with a `rank_for_evaluation`
      signature, or None to report the baselines only.
    spark: SparkSession for ALS; None starts a local[2] one when needed.

  Returns:
    The report dict that report.json holds.
  """
  summary = data.read_summary(examples_dir)
  catalog_size = int(summary["catalog_items"])
  if ks is None:
    # Imported here because pipeline.config pulls in the trainer settings.
    from pipeline import config as config_lib  # pylint: disable=g-import-not-at-top
    ks = config_lib.EvaluationSettings().cutoffs(catalog_size)
  k = max(ks)

  records = data.read_holdout_records(examples_dir)
  users = [data.parse_holdout(record) for record in records]
  run = runner.run_baselines(examples_dir, k, settings, spark=spark,
                             users=users)
  if run.catalog_size != catalog_size:
    raise ValueError(
        f"the training positives hold {run.catalog_size} distinct items but "
        f"summary.json says catalog_items={catalog_size}; the examples "
        "directory is inconsistent")
  rankings = dict(run.rankings)
  if saved_model_dir:
    # The model's K is capped at its vocabulary size, like the catalog here.
    rankings[MODEL] = model_rankings(saved_model_dir, records,
                                     min_k=min(k, catalog_size))

  details = {
      "examples_dir": os.path.abspath(examples_dir),
      "saved_model_dir": saved_model_dir,
      "holdout_mode": summary.get("config", {}).get("holdout"),
      "exclude_seen": settings.exclude_seen,
      "training_splits": list(settings.training_splits),
      "baselines": run.diagnostics,
      "skipped": run.skipped,
  }
  report = build_report(rankings, users, ks, catalog_size, details)
  paths = write_report(report, report_dir)
  logging.info("Evaluation report written to %s.", paths["markdown"])
  return report


def parse_args(argv: List[str]) -> argparse.Namespace:
  defaults = runner.BaselineSettings()
  parser = argparse.ArgumentParser(
      prog="python -m evaluation.report",
      description="Rank the catalog with the baselines (and a model) for "
      "every holdout user and write a comparison report.")
  parser.add_argument("--examples", required=True,
                      help="Output directory of spark.make_examples.")
  parser.add_argument("--output", required=True, help="Report directory.")
  parser.add_argument("--saved-model", help="Serving SavedModel to include.")
  parser.add_argument("--ks", type=int, nargs="+",
                      help="Cut-offs (default: 10 50 100 and catalog/50).")
  parser.add_argument("--methods", nargs="+", choices=runner.ALL_METHODS,
                      default=list(defaults.methods), help="Baselines to run.")
  parser.add_argument("--keep-seen", action="store_true",
                      help="Rank items the user rated before the cut too.")
  parser.add_argument("--train-splits", nargs="+",
                      default=list(defaults.training_splits),
                      help="Splits whose positives the baselines learn from.")
  parser.add_argument("--cooccurrence-history", default=defaults.cooccurrence_history,
                      choices=("touched", "seen"),
                      help="History of the co-occurrence baseline: the last "
                      "N items (touched) or every item before the cut (seen).")
  parser.add_argument("--als-rank", type=int, default=defaults.als_rank,
                      help="ALS factor dimension.")
  parser.add_argument("--als-reg-param", type=float,
                      default=defaults.als_reg_param,
                      help="ALS L2 regularization.")
  parser.add_argument("--als-alpha", type=float, default=defaults.als_alpha,
                      help="ALS confidence weight per positive.")
  parser.add_argument("--als-max-iter", type=int,
                      default=defaults.als_max_iter,
                      help="ALS alternating iterations.")
  parser.add_argument("--seed", type=int, default=defaults.seed,
                      help="ALS random seed.")
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  logging.set_verbosity(logging.INFO)
  args = parse_args(sys.argv[1:] if argv is None else argv)
  settings = runner.BaselineSettings(
      methods=tuple(args.methods), exclude_seen=not args.keep_seen,
      training_splits=tuple(args.train_splits),
      cooccurrence_history=args.cooccurrence_history,
      als_rank=args.als_rank, als_reg_param=args.als_reg_param,
      als_alpha=args.als_alpha, als_max_iter=args.als_max_iter,
      seed=args.seed)
  report = evaluate_and_write(args.examples, args.output, ks=args.ks,
                              settings=settings,
                              saved_model_dir=args.saved_model)
  print(format_markdown(report))
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""TFMA metric that ranks the whole catalog for each holdout user.

The Evaluator calls the model's `rank_for_evaluation` signature on holdout
examples. That signature returns, for each user, the top K product ids of
the whole vocabulary with the user's past items excluded. This metric
compares those ids with the user's `holdout_product_id` list, both as raw
strings, so an item that is new in the holdout period still counts in |R|
even though no id-based model can retrieve it.

The metric is referenced from the EvalConfig by module path
(`evaluation.tfma_metrics`), so Beam workers must have this package
installed. Installing the project (locally, or in the pipeline image for
Vertex AI and Dataflow) provides it.
"""

import json
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from evaluation import ranking_metrics
from schemas import features

RANKING_METRICS_NAME = "ranking_metrics"
# Output of the evaluation signature that contains the ranked ids.
TOP_K_IDS_OUTPUT = "top_k_ids"


def _as_id_list(values: Any) -> List[bytes]:
  if values is None:
    return []
  return [value for value in np.asarray(values, dtype=object).ravel()]


def _ranked_ids(element: metric_types.StandardMetricInputs,
                model_name: str) -> List[bytes]:
  """Return the ranked ids a model produced for one example."""
  prediction = element.prediction
  if model_name and isinstance(prediction, dict) and model_name in prediction:
    prediction = prediction[model_name]
  if isinstance(prediction, dict):
    if TOP_K_IDS_OUTPUT not in prediction:
      raise ValueError(
          f"model output has no '{TOP_K_IDS_OUTPUT}' (outputs: "
          f"{sorted(prediction)}); evaluate the 'rank_for_evaluation' "
          "signature of the exported model")
    prediction = prediction[TOP_K_IDS_OUTPUT]
  # Padding entries (b"") mark fewer than K results and never match an id.
  return [item for item in _as_id_list(prediction) if item]


class RankingMetrics(metric_types.Metric):
  """MAP@K, Recall@K, NDCG@K and hit rate@K over whole-catalog rankings.

  Produces one metric per (name, K), named like `map@10`; the conventions
  are in evaluation/ranking_metrics.py. Users are weighted equally, whatever
  the example weight, because the metrics are means over users.
  """

  def __init__(self, top_k_list: Optional[List[int]] = None,
               relevant_feature: str = features.HOLDOUT_ITEMS,
               name: str = RANKING_METRICS_NAME, code_version: str = ""):
    """Initialize the metric.

    Args:
      top_k_list: Cut-offs K. Each must not exceed the K of the model's
        evaluation signature, or the metric would silently cut at the smaller
        list length.
      relevant_feature: Feature that lists each user's relevant item ids.
      name: Metric name prefix; only used to label the computation.
      code_version: Fingerprint of the project's code. The metric ignores
        it, but because it is part of the Evaluator's configuration, TFX
        re-runs the Evaluator after a code change instead of reusing a
        cached result.
    """
    super().__init__(
        _ranking_metric_computations,
        top_k_list=list(top_k_list or [10]),
        relevant_feature=relevant_feature,
        name=name,
        code_version=code_version)


metric_types.register_metric(RankingMetrics)


def _ranking_metric_computations(
    top_k_list: List[int],
    relevant_feature: str,
    name: str = RANKING_METRICS_NAME,
    model_names: Optional[List[str]] = None,
    output_names: Optional[List[str]] = None,
    example_weighted: bool = False,
    code_version: str = "",
) -> metric_types.MetricComputations:
  """Create one combiner per model that outputs every metric at every K.

  The keys leave `example_weighted` unset: these metrics weigh every user
  equally, and TFMA builds the keys of `MetricsSpec.thresholds` the same
  way, so a threshold on `map@K` finds the value.
  """
  del name, example_weighted, code_version  # Not needed to compute.
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      keys = {
          metric_name: metric_types.MetricKey(
              name=metric_name, model_name=model_name,
              output_name=output_name,
              example_weighted=None)
          for metric_name in (
              ranking_metrics.metric_key(metric, k)
              for metric in ranking_metrics.METRIC_NAMES
              for k in top_k_list)
      }
      users_key = metric_types.MetricKey(
          name="ranked_users", model_name=model_name,
          output_name=output_name, example_weighted=None)
      computations.append(
          metric_types.MetricComputation(
              keys=list(keys.values()) + [users_key],
              preprocessors=[
                  metric_types.FeaturePreprocessor(
                      feature_keys=[relevant_feature])
              ],
              combiner=_RankingCombiner(keys, users_key, model_name,
                                        top_k_list, relevant_feature)))
  return computations


class _RankingCombiner(beam.CombineFn):
  """Sums per-user metrics; `extract_output` turns sums into means."""

  def __init__(self, keys: Dict[str, metric_types.MetricKey],
               users_key: metric_types.MetricKey, model_name: str,
               top_k_list: List[int], relevant_feature: str):
    self._keys = keys
    self._users_key = users_key
    self._model_name = model_name
    self._top_k_list = list(top_k_list)
    self._relevant_feature = relevant_feature

  def create_accumulator(self) -> ranking_metrics.MetricSums:
    return ranking_metrics.MetricSums()

  def add_input(self, accumulator: ranking_metrics.MetricSums,
                element: metric_types.StandardMetricInputs):
    features_dict = element.features or {}
    if self._relevant_feature not in features_dict:
      raise ValueError(
          f"holdout example has no '{self._relevant_feature}' feature; "
          "evaluate on the holdout split written by the Spark job")
    relevant = [item for item in
                _as_id_list(features_dict[self._relevant_feature]) if item]
    accumulator.add_user(_ranked_ids(element, self._model_name), relevant,
                         self._top_k_list)
    return accumulator

  def merge_accumulators(
      self, accumulators: Iterable[ranking_metrics.MetricSums]
  ) -> ranking_metrics.MetricSums:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      result.merge(accumulator)
    return result

  def extract_output(
      self, accumulator: ranking_metrics.MetricSums
  ) -> Dict[metric_types.MetricKey, float]:
    # No key at all when no user was ranked: a threshold on a missing metric
    # fails TFMA's validation, so the gate stays closed.
    means = accumulator.means()
    output = {key: means[metric_name]
              for metric_name, key in self._keys.items()
              if metric_name in means}
    output[self._users_key] = float(accumulator.users)
    return output


def metric_config_json(top_k_list: List[int], code_version: str = "") -> str:
  """Return the `config` string of a tfma.MetricConfig for this metric."""
  return json.dumps({"top_k_list": list(top_k_list),
                     "code_version": code_version})

"""Read a finished local run back from ML Metadata and its artifacts."""

import dataclasses
import os
from typing import Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
import tensorflow_model_analysis as tfma


@dataclasses.dataclass
class RunReport:
  """Locations of a run's outputs and the metrics the Evaluator measured."""

  model_dir: Optional[str] = None
  model_run_dir: Optional[str] = None
  evaluation_dir: Optional[str] = None
  blessed: Optional[bool] = None
  pushed_dir: Optional[str] = None
  metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
  # Seconds each component's latest execution took; cached ones take ~0.
  component_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)
  component_states: Dict[str, str] = dataclasses.field(default_factory=dict)


def _store(metadata_path: str) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
  return metadata_store.MetadataStore(config)


def _latest(store, type_name: str):
  artifacts = store.get_artifacts_by_type(type_name)
  return max(artifacts, key=lambda a: a.id) if artifacts else None


def _int_property(artifact, name: str) -> Optional[int]:
  if name in artifact.custom_properties:
    return artifact.custom_properties[name].int_value
  return None


# Model names TFMA gives the evaluated model: empty when no baseline model is
# compared, "candidate" when the latest blessed model is the baseline.
_CANDIDATE_MODEL_NAMES = ("", "candidate")


def read_metrics(evaluation_dir: str) -> Dict[str, float]:
  """Return the overall-slice metrics of the evaluated (candidate) model.

  Metrics of the baseline model and differences against it are left out.
  """
  values = {}
  for metrics in tfma.load_metrics(evaluation_dir):
    if metrics.slice_key.single_slice_keys:
      continue
    for entry in metrics.metric_keys_and_values:
      key = entry.key
      if key.is_diff or key.model_name not in _CANDIDATE_MODEL_NAMES:
        continue
      if entry.value.HasField("double_value"):
        values[key.name] = entry.value.double_value.value
  return values


def read_report(metadata_path: str) -> RunReport:
  """Collect the latest artifacts and execution times of a pipeline."""
  store = _store(metadata_path)
  report = RunReport()

  model = _latest(store, "Model")
  if model:
    report.model_dir = os.path.join(model.uri, "Format-Serving")
  model_run = _latest(store, "ModelRun")
  if model_run:
    report.model_run_dir = model_run.uri
  evaluation = _latest(store, "ModelEvaluation")
  if evaluation:
    report.evaluation_dir = evaluation.uri
    report.metrics = read_metrics(evaluation.uri)
  blessing = _latest(store, "ModelBlessing")
  if blessing:
    report.blessed = _int_property(blessing, "blessed") == 1
  pushed = _latest(store, "PushedModel")
  if pushed and _int_property(pushed, "pushed") == 1:
    report.pushed_dir = pushed.custom_properties[
        "pushed_destination"].string_value

  state_names = {
      value: name for name, value in
      metadata_store_pb2.Execution.State.items()
  }
  for context in store.get_contexts_by_type("node"):
    executions = store.get_executions_by_context(context.id)
    if not executions:
      continue
    latest = max(executions, key=lambda e: e.id)
    component = context.name.split(".", 1)[-1]
    report.component_seconds[component] = (
        latest.last_update_time_since_epoch -
        latest.create_time_since_epoch) / 1000.0
    report.component_states[component] = state_names.get(
        latest.last_known_state, str(latest.last_known_state))
  return report


def format_metrics_table(metrics: Dict[str, float],
                         names: List[str]) -> str:
  """Return a Markdown table with one row per K and one column per metric."""
  ks = sorted({int(key.split("@")[1]) for key in metrics if "@" in key})
  lines = ["| K | " + " | ".join(names) + " |",
           "|---|" + "---|" * len(names)]
  for k in ks:
    cells = [f"{metrics[f'{name}@{k}']:.4f}" if f"{name}@{k}" in metrics
             else "n/a" for name in names]
    lines.append(f"| {k} | " + " | ".join(cells) + " |")
  return "\n".join(lines)

"""One configuration for the whole run: Spark job, TFX components, gate.

A configuration is a JSON file whose sections mirror the dataclasses below;
every field has a default, so a file only lists what it changes:

    {
      "pipeline_name": "movielens",
      "ratings_path": "data/ratings.csv",
      "layout": "movielens",
      "examples": {"negatives": 4},
      "trainer": {"embedding_dim": 64, "epochs": 8},
      "evaluation": {"map_floor": 0.01}
    }

Unknown keys raise an error naming the key, so a typo is never ignored.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Optional, Tuple

from baselines.runner import BaselineSettings
from spark.config import ExampleJobConfig
from trainer.hyperparameters import Hyperparameters

# Catalog size divided by this gives the reference walk-through's K (242 for
# its 12,120 Luxury Beauty items).
REFERENCE_CATALOG_DIVISOR = 50


# Defaults of the Spark job, so the two configurations cannot drift apart.
_JOB_DEFAULTS = {field.name: field.default
                 for field in dataclasses.fields(ExampleJobConfig)}


@dataclasses.dataclass(frozen=True)
class ExampleSettings:
  """Settings of the Spark job; see spark/config.py for each field."""

  window: int = _JOB_DEFAULTS["window"]
  holdout: str = _JOB_DEFAULTS["holdout"]
  holdout_quantile: float = _JOB_DEFAULTS["holdout_quantile"]
  per_user_cut: int = _JOB_DEFAULTS["per_user_cut"]
  eval_split: str = _JOB_DEFAULTS["eval_split"]
  eval_quantile: float = _JOB_DEFAULTS["eval_quantile"]
  eval_user_fraction: float = _JOB_DEFAULTS["eval_user_fraction"]
  negatives: int = _JOB_DEFAULTS["negatives"]
  seed: int = _JOB_DEFAULTS["seed"]
  num_shards: int = _JOB_DEFAULTS["num_shards"]
  max_reject_fraction: float = _JOB_DEFAULTS["max_reject_fraction"]
  driver_memory: str = _JOB_DEFAULTS["driver_memory"]


@dataclasses.dataclass(frozen=True)
class TransformSettings:
  """Settings of the Transform component."""

  # Hash buckets for ids missing from the training vocabulary.
  num_oov_buckets: int = 1
  # Items seen fewer times than this in the training split (over the
  # candidate and the history lists together) get no vocabulary entry.
  min_item_count: int = 1


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
  """Cut-offs of the ranking metrics and the blessing gate."""

  top_k_list: Tuple[int, ...] = (10, 50, 100)
  # Also report K = catalog size / 50, the reference walk-through's choice.
  add_reference_k: bool = True
  # K of the gated MAP@K; None gates at the reference K (catalog / 50) when
  # add_reference_k is set, else at the largest K of top_k_list.
  gate_k: Optional[int] = None
  # A model is blessed only when MAP@gate_k is at least this value.
  map_floor: float = 0.01
  # Largest drop of MAP@gate_k, in absolute terms, accepted against the
  # latest blessed model. 0 means "no worse".
  max_map_regression: float = 0.0
  # The model must also reach the most-popular baseline's MAP@gate_k on the
  # same holdout times (1 + this margin); 0.1 means 10% better. None turns
  # this part of the gate off.
  min_lift_over_popularity: Optional[float] = 0.1
  # Write the report that sets the model beside every baseline after the
  # run (pipeline/run.py); ALS makes it the slowest step on large data.
  write_report: bool = True

  def cutoffs(self, catalog_size: Optional[int]) -> Tuple[int, ...]:
    """Return the sorted cut-offs, the reference K included when known."""
    ks = set(self.top_k_list)
    if self.add_reference_k and catalog_size:
      ks.add(reference_k(catalog_size))
    return tuple(sorted(ks))

  def effective_floor(self, popularity_map: Optional[float]) -> float:
    """Return the MAP floor, raised to beat the popularity baseline."""
    if popularity_map is None or self.min_lift_over_popularity is None:
      return self.map_floor
    return max(self.map_floor,
               popularity_map * (1.0 + self.min_lift_over_popularity))

  def gated_k(self, catalog_size: Optional[int]) -> int:
    """Return the K at which the gate reads MAP@K."""
    if self.gate_k is not None:
      return self.gate_k
    if self.add_reference_k and catalog_size:
      return reference_k(catalog_size)
    return max(self.top_k_list)


def reference_k(catalog_size: int) -> int:
  """Return K = catalog size / 50, at least 1."""
  return max(1, catalog_size // REFERENCE_CATALOG_DIVISOR)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything one local or cloud run needs.

  Paths may be local or `gs://`. Relative local paths are resolved against
  the current directory when the configuration is loaded.
  """

  pipeline_name: str = "candidate-generation"
  # Ratings CSV; None runs on a synthetic data set (see pipeline/run.py).
  ratings_path: Optional[str] = None
  layout: str = "amazon"
  # Root for everything a run writes; the paths below default to folders
  # under it.
  output_root: str = "runs"
  examples_dir: Optional[str] = None
  pipeline_root: Optional[str] = None
  metadata_path: Optional[str] = None
  serving_root: Optional[str] = None
  # Beam options for the TFX components, e.g. ["--direct_num_workers=2"].
  beam_pipeline_args: Tuple[str, ...] = ("--direct_running_mode=in_memory",
                                         "--direct_num_workers=1")
  examples: ExampleSettings = ExampleSettings()
  transform: TransformSettings = TransformSettings()
  trainer: Hyperparameters = Hyperparameters()
  evaluation: EvaluationSettings = EvaluationSettings()
  baselines: BaselineSettings = BaselineSettings()

  def _under_root(self, value: Optional[str], *parts: str) -> str:
    if value:
      return value
    return os.path.join(self.output_root, self.pipeline_name, *parts)

  @property
  def resolved_examples_dir(self) -> str:
    return self._under_root(self.examples_dir, "examples")

  @property
  def resolved_pipeline_root(self) -> str:
    return self._under_root(self.pipeline_root, "tfx")

  @property
  def resolved_metadata_path(self) -> str:
    return self._under_root(self.metadata_path, "metadata.sqlite")

  @property
  def resolved_serving_root(self) -> str:
    return self._under_root(self.serving_root, "serving")

  @property
  def resolved_report_dir(self) -> str:
    return self._under_root(None, "report")


_SECTIONS = {
    "examples": ExampleSettings,
    "transform": TransformSettings,
    "trainer": Hyperparameters,
    "evaluation": EvaluationSettings,
    "baselines": BaselineSettings,
}


def _build(cls, values: Dict[str, Any], where: str):
  known = {field.name: field for field in dataclasses.fields(cls)}
  unknown = sorted(set(values) - set(known))
  if unknown:
    raise ValueError(f"unknown setting(s) {unknown} in {where}; "
                     f"known: {sorted(known)}")
  converted = {}
  for name, value in values.items():
    if isinstance(value, list):
      value = tuple(value)
    converted[name] = value
  return cls(**converted)


def from_dict(values: Dict[str, Any], where: str = "configuration") -> PipelineConfig:
  """Build a configuration from a dict shaped like the JSON file."""
  values = dict(values)
  sections = {}
  for name, cls in _SECTIONS.items():
    section = values.pop(name, None)
    if section is None:
      section = {}
    if not isinstance(section, dict):
      raise ValueError(f"'{name}' in {where} must be an object, got {section!r}")
    sections[name] = _build(cls, section, f"'{name}' of {where}")
  config = _build(PipelineConfig, values, where)
  return dataclasses.replace(config, **sections)


def read_json_object(path: str, kind: str) -> Dict[str, Any]:
  """Read a JSON file that must contain one object.

  Args:
    path: The file.
    kind: What the file is, for error messages, e.g. "configuration file".

  Raises:
    FileNotFoundError: The file does not exist.
    ValueError: The file is not valid JSON or not an object.
  """
  try:
    with open(path, encoding="utf-8") as json_file:
      values = json.load(json_file)
  except FileNotFoundError:
    raise FileNotFoundError(f"{kind} not found: {path}") from None
  except json.JSONDecodeError as error:
    raise ValueError(f"{kind} {path} is not valid JSON: {error}") from None
  if not isinstance(values, dict):
    raise ValueError(f"{kind} {path} must hold a JSON object")
  return values


def load(path: str) -> PipelineConfig:
  """Read a JSON configuration file."""
  return from_dict(read_json_object(path, "configuration file"), where=path)


def to_dict(config: PipelineConfig) -> Dict[str, Any]:
  """Return the configuration as JSON-compatible values."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def trainer_settings(config: PipelineConfig) -> Hyperparameters:
  """Return the trainer settings with the values fixed by other sections."""
  return dataclasses.replace(
      config.trainer,
      window=config.examples.window,
      num_oov_buckets=config.transform.num_oov_buckets,
      negatives_per_positive=config.examples.negatives)

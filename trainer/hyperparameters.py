"""Trainer settings that travel from the pipeline configuration.

The pipeline passes these in the Trainer's `custom_config`; `from_custom_config`
fills in defaults and rejects unknown or invalid values, so a typo in the
configuration fails before training starts instead of being ignored.
"""

import dataclasses
from typing import Any, Dict, Tuple

# Keys that the Trainer of tfx.extensions.google_cloud_ai_platform (TFX 1.16,
# trainer/executor.py and constants.py) reads from `custom_config` to start
# the training job. It passes the whole `custom_config` on to `run_fn`, so
# these keys arrive next to the settings and are not settings themselves.
CLOUD_TRAINER_KEYS = frozenset({
    "ai_platform_training_args",  # TRAINING_ARGS_KEY
    "ai_platform_training_job_id",  # JOB_ID_KEY
    "ai_platform_training_labels",  # LABELS_KEY
    "ai_platform_enable_vertex",  # ENABLE_VERTEX_KEY
    "ai_platform_vertex_region",  # VERTEX_REGION_KEY
    "ai_platform_training_enable_ucaip",  # ENABLE_UCAIP_KEY, deprecated
    "ai_platform_training_ucaip_region",  # UCAIP_REGION_KEY, deprecated
})

CLASSIFIER = "classifier"
TWO_TOWER = "two_tower"
MODEL_TYPES = (CLASSIFIER, TWO_TOWER)
EARLY_STOPPING_METRICS = ("loss", "map")


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
  """Model and training settings; `model_type` selects the model.

  The defaults won the search recorded in docs/tuning.md: the two-tower
  model without a user id embedding, trained until whole-catalog MAP@10 on
  the eval split stops rising.
  """

  embedding_dim: int = 32
  hidden_units: Tuple[int, ...] = (64,)
  # An upper bound when early stopping is on.
  epochs: int = 20
  batch_size: int = 512
  learning_rate: float = 0.003
  # Weight of a positive example relative to a negative one. Sampling K
  # negatives per positive makes positives a 1 / (K + 1) minority; weighting
  # them by K restores the balance. None means "use the negatives per
  # positive of the Spark job".
  positive_weight: float = None
  seed: int = 42
  window: int = 10
  num_oov_buckets: int = 1
  negatives_per_positive: int = 3
  # Length of the list the `retrieval` signature returns.
  retrieval_k: int = 100
  # Largest cut-off the Evaluator requests, so the `rank_for_evaluation`
  # signature returns this many items per user.
  evaluation_k: int = 100
  # One of MODEL_TYPES: "classifier" (trainer/model.py) or "two_tower"
  # (trainer/two_tower_model.py).
  model_type: str = TWO_TOWER
  # Whether the user vector includes a per-user id embedding besides the
  # history means; see trainer/model.py.
  user_id_embedding: bool = False
  # Whether the user vector includes the example's age (schemas/features.py,
  # EXAMPLE_AGE); serving uses age 0.
  use_example_age: bool = False
  # classifier only: dropout rate after each hidden layer of the scorer.
  dropout: float = 0.0
  # Stop when the validation metric has not improved for this many epochs
  # and keep the weights of the best epoch; 0 trains all `epochs`.
  early_stopping_patience: int = 2
  # The validation metric: "loss" (the training objective on the eval
  # split) or "map" (MAP@validation_k of the eval split's positives ranked
  # over the whole catalog, trainer/validation.py).
  early_stopping_metric: str = "map"
  validation_k: int = 10
  # two_tower only: items drawn uniformly per batch as extra negatives, on
  # top of the other positives of the batch.
  extra_negatives: int = 0
  # Fingerprint of the project's code (pipeline/code_version.py). Training
  # ignores it; it is here so that TFX re-runs the Trainer after a code
  # change instead of reusing a cached model.
  code_version: str = ""

  def __post_init__(self):
    if self.model_type not in MODEL_TYPES:
      raise ValueError(f"model_type must be one of {list(MODEL_TYPES)}, "
                       f"got {self.model_type!r}")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
    if self.early_stopping_metric not in EARLY_STOPPING_METRICS:
      raise ValueError("early_stopping_metric must be one of "
                       f"{list(EARLY_STOPPING_METRICS)}, got "
                       f"{self.early_stopping_metric!r}")
    if self.early_stopping_patience < 0:
      raise ValueError("early_stopping_patience must be at least 0, got "
                       f"{self.early_stopping_patience}")
    if self.extra_negatives < 0:
      raise ValueError(
          f"extra_negatives must be at least 0, got {self.extra_negatives}")
    for name in ("embedding_dim", "epochs", "batch_size", "window",
                 "retrieval_k", "evaluation_k", "validation_k"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
    if not self.hidden_units or min(self.hidden_units) < 1:
      raise ValueError(
          f"hidden_units must be positive layer sizes, got {self.hidden_units}")
    if self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
    if self.num_oov_buckets < 1:
      raise ValueError("num_oov_buckets must be at least 1 so unknown ids "
                       f"have a row, got {self.num_oov_buckets}")

  @property
  def effective_positive_weight(self) -> float:
    if self.positive_weight is None:
      return float(max(self.negatives_per_positive, 1))
    return float(self.positive_weight)

  def to_custom_config(self) -> Dict[str, Any]:
    """Return a JSON-serialisable dict for TFX's `custom_config`."""
    config = dataclasses.asdict(self)
    config["hidden_units"] = list(self.hidden_units)
    return config

  @classmethod
  def from_custom_config(cls, config: Dict[str, Any]) -> "Hyperparameters":
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
      raise ValueError(f"unknown trainer settings {unknown}; known: {sorted(known)}")
    values = dict(config)
    if "hidden_units" in values:
      values["hidden_units"] = tuple(int(u) for u in values["hidden_units"])
    return cls(**values)


def without_cloud_trainer_keys(custom_config: Dict[str, Any]) -> Dict[str, Any]:
  """Return `custom_config` without the keys in `CLOUD_TRAINER_KEYS`."""
  return {key: value for key, value in custom_config.items()
          if key not in CLOUD_TRAINER_KEYS}

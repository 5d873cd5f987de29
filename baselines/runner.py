"""Fit every baseline on the training positives and rank the holdout users."""

import dataclasses
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging

from baselines import als as als_lib
from baselines import cooccurrence
from baselines import data
from baselines import popularity
from baselines.ranking import Catalog, Ranker, rank_users
from schemas import features

MOST_POPULAR = "most_popular"
RECENT_POPULAR = "recent_popular"
COOCCURRENCE = "cooccurrence"
ALS = "als"
ALL_METHODS = (MOST_POPULAR, RECENT_POPULAR, COOCCURRENCE, ALS)


@dataclasses.dataclass(frozen=True)
class BaselineSettings:
  """Baseline methods and hyperparameters.

  The fields are flat, not nested, so that a JSON configuration section
  maps onto them with `pipeline.config`'s loader.
  """

  methods: Tuple[str, ...] = ALL_METHODS
  # Remove each user's seen_product_id items from the ranking, as the
  # model's rank_for_evaluation signature does.
  exclude_seen: bool = True
  # Splits whose positives the baselines learn from. The model's vocabulary
  # and weights come from train only.
  training_splits: Tuple[str, ...] = (features.TRAIN_SPLIT,)
  recent_days: float = popularity.DEFAULT_RECENT_DAYS
  cooccurrence_history: str = cooccurrence.HISTORY_TOUCHED
  als_rank: int = 32
  als_reg_param: float = 0.1
  als_alpha: float = 10.0
  als_max_iter: int = 10
  seed: int = 0

  def als_settings(self) -> als_lib.AlsSettings:
    return als_lib.AlsSettings(rank=self.als_rank, reg_param=self.als_reg_param,
                               alpha=self.als_alpha, max_iter=self.als_max_iter,
                               seed=self.seed)


@dataclasses.dataclass
class BaselineRun:
  """Ranked lists of every baseline over one set of holdout users.

  Attributes:
    users: The holdout users, in shard order.
    catalog_size: Distinct items of the training positives.
    k: Length of every ranked list (shorter only when the catalog runs out).
    rankings: Method name -> user id -> ranked item ids.
    diagnostics: Method name -> fallbacks, settings and fit seconds.
    skipped: Method name -> why it did not run.
  """

  users: List[data.HoldoutExample]
  catalog_size: int
  k: int
  rankings: Dict[str, Dict[str, List[str]]]
  diagnostics: Dict[str, Dict[str, object]]
  skipped: Dict[str, str]


def _build_ranker(method: str, settings: BaselineSettings, catalog: Catalog,
                  interactions: data.Interactions, counts,
                  spark) -> Tuple[Optional[Ranker], str]:
  """Return the fitted ranker of `method`, or None and the reason."""
  if method == MOST_POPULAR:
    return popularity.PopularityRanker(catalog, counts, name=method), ""
  if method == RECENT_POPULAR:
    if interactions.timestamps is None:
      return None, ("the training examples have no 'timestamp' feature, so "
                    "recent events cannot be told apart")
    recent = popularity.recent_item_counts(
        interactions.items, interactions.timestamps, catalog,
        recent_days=settings.recent_days)
    # All-time counts break ties among items with equal recent counts.
    tie_breaker = counts / (counts.max(initial=0.0) + 1.0)
    return popularity.PopularityRanker(catalog, recent + tie_breaker,
                                       name=method), ""
  if method == COOCCURRENCE:
    return cooccurrence.CooccurrenceRanker(
        catalog, interactions, counts, history=settings.cooccurrence_history,
        name=method), ""
  if method == ALS:
    return als_lib.AlsRanker(catalog, interactions, counts,
                             settings.als_settings(), spark=spark,
                             name=method), ""
  raise ValueError(f"unknown baseline {method!r}; known: {ALL_METHODS}")


def run_baselines(examples_dir: str, k: int,
                  settings: BaselineSettings = BaselineSettings(),
                  spark=None,
                  users: Optional[Sequence[data.HoldoutExample]] = None
                  ) -> BaselineRun:
  """Fit the configured baselines and rank the catalog for holdout users.

  Args:
    examples_dir: Output directory of the Spark job (train/, holdout/).
    k: Length of the ranked lists, i.e. the largest metric cut-off.
    settings: Methods and their hyperparameters.
    spark: SparkSession for ALS; None starts a local[2] one when needed.
    users: Users to rank; None reads the holdout split of `examples_dir`.

  Returns:
    The ranked lists. A method that cannot run on these examples (recent
    popularity without timestamps) is listed in `skipped` with the reason.
  """
  interactions = data.read_interactions(examples_dir,
                                        settings.training_splits)
  catalog = Catalog(interactions.catalog())
  if not len(catalog):
    raise ValueError(f"no training positives in {examples_dir}; nothing to "
                     "rank")
  users = list(users) if users is not None else data.read_holdout(examples_dir)
  counts = popularity.item_counts(interactions.items, catalog)
  logging.info("Baselines: %d training positives, catalog %d items, %d "
               "holdout users.", interactions.items.size, len(catalog),
               len(users))

  run = BaselineRun(users=users, catalog_size=len(catalog), k=k, rankings={},
                    diagnostics={}, skipped={})
  for method in settings.methods:
    started = time.monotonic()
    ranker, reason = _build_ranker(method, settings, catalog, interactions,
                                   counts, spark)
    if ranker is None:
      logging.warning("Baseline %s skipped: %s", method, reason)
      run.skipped[method] = reason
      continue
    run.rankings[method] = rank_users(ranker, users, k,
                                      exclude_seen=settings.exclude_seen)
    run.diagnostics[method] = dict(
        ranker.diagnostics(), exclude_seen=settings.exclude_seen,
        seconds=round(time.monotonic() - started, 1))
    logging.info("Baseline %s ranked %d users in %.1f s.", method, len(users),
                 time.monotonic() - started)
  return run

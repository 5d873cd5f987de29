"""Whole-catalog ranking shared by every baseline.

A baseline scores every catalog item for a batch of holdout users. This
module turns the scores into top-K lists the same way for all baselines:

* The catalog is sorted by id, and ties go to the earlier catalog position
  (`evaluation.ranking_metrics.top_k_by_score`), so equal scores rank by id.
* With `exclude_seen`, items in the user's `seen_product_id` are removed
  before ranking, as the model's `rank_for_evaluation` signature does. They
  are removed rather than scored lowest, so a list never ends with them.
"""

import abc
from typing import Dict, List, Sequence

import numpy as np

from baselines.data import HoldoutExample
from evaluation import ranking_metrics

# Users scored per call of `Ranker.score`; bounds the dense score matrix at
# batch x catalog float64 values (256 x 10,000 is about 20 MB).
DEFAULT_BATCH_USERS = 256


class Catalog:
  """Items a baseline can recommend, in a fixed order (sorted by id)."""

  def __init__(self, item_ids: Sequence[str]):
    ordered = list(item_ids)
    if ordered != sorted(set(ordered)):
      raise ValueError("catalog ids must be distinct and sorted, so that "
                       "ties break by id the same way on every run")
    self.ids = np.array(ordered, dtype=object)
    self.index: Dict[str, int] = {item: i for i, item in enumerate(ordered)}

  def __len__(self) -> int:
    return len(self.ids)

  def positions(self, item_ids: Sequence[str]) -> np.ndarray:
    """Return the catalog positions of the ids that are in the catalog."""
    return np.array([self.index[item] for item in item_ids
                     if item in self.index], dtype=np.int64)


class Ranker(abc.ABC):
  """A baseline fitted on training positives, scoring the whole catalog."""

  name: str = "ranker"

  def __init__(self, catalog: Catalog):
    self.catalog = catalog

  @abc.abstractmethod
  def score(self, users: Sequence[HoldoutExample]) -> np.ndarray:
    """Return a [len(users), len(catalog)] array; higher ranks first."""

  def diagnostics(self) -> Dict[str, object]:
    """Return counts worth reporting next to the metrics, e.g. fallbacks."""
    return {}


def rank_users(ranker: Ranker, users: Sequence[HoldoutExample], k: int,
               exclude_seen: bool = True,
               batch_users: int = DEFAULT_BATCH_USERS) -> Dict[str, List[str]]:
  """Rank the catalog for every user and keep the top `k`.

  Args:
    ranker: A fitted baseline.
    users: Holdout users; `user_id` must be unique.
    k: List length. Lists are shorter only when fewer items remain.
    exclude_seen: Remove each user's `seen` items before ranking.
    batch_users: Users scored per batch.

  Returns:
    The ranked item ids of each user, keyed by user id.
  """
  catalog = ranker.catalog
  ranked: Dict[str, List[str]] = {}
  for start in range(0, len(users), batch_users):
    batch = users[start:start + batch_users]
    scores = ranker.score(batch)
    for row, user in enumerate(batch):
      keep = np.ones(len(catalog), dtype=bool)
      if exclude_seen:
        keep[catalog.positions(user.seen)] = False
      ranked[user.user_id] = ranking_metrics.top_k_by_score(
          catalog.ids[keep], scores[row][keep], k)
  return ranked

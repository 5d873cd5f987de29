"""Top-K ranking metrics for one user, and their means over users.

Conventions, for one user with relevant set R and ranked list L cut at K:

* A relevant item counts once. When L repeats an item, only its first
  position can be a hit; later copies still take up their positions.
* Ties in score are not handled here: L is already ordered, and the ranker
  decides ties (TensorFlow's `top_k` puts the lower index first).
* AP@K = (1 / min(|R|, K)) * sum over hit positions k <= K of
  (hits in L[1..k]) / k. Normalising by min(|R|, K) rather than |R| makes a
  perfect list score 1 even when |R| > K.
* Recall@K = |L[1..K] ∩ R| / |R|.
* NDCG@K uses binary gains, DCG = sum over hit positions of 1 / log2(k + 1),
  divided by the DCG of an ideal list with min(|R|, K) hits on top.
* Hit rate@K is 1 when L[1..K] contains any relevant item.
* Users with an empty R are skipped by `mean_over_users`, because none of
  these metrics is defined for them.
"""

import math
from typing import Dict, Iterable, Sequence

import numpy as np

MAP = "map"
RECALL = "recall"
NDCG = "ndcg"
HIT_RATE = "hit_rate"
METRIC_NAMES = (MAP, RECALL, NDCG, HIT_RATE)


def metric_key(name: str, k: int) -> str:
  """Return the name a metric at cut-off `k` is reported under, e.g. map@10."""
  return f"{name}@{k}"


def _hit_positions(ranked: Sequence, relevant: set, k: int) -> np.ndarray:
  """Return the 1-based positions in ranked[:k] that are first-time hits."""
  positions = []
  already_hit = set()
  for position, item in enumerate(ranked[:k], start=1):
    if item in relevant and item not in already_hit:
      already_hit.add(item)
      positions.append(position)
  return np.asarray(positions, dtype=np.float64)


def average_precision_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
  """Compute AP@K for one user; see the module docstring for conventions."""
  relevant = set(relevant)
  if not relevant:
    raise ValueError("average precision is undefined for an empty relevant set")
  positions = _hit_positions(ranked, relevant, k)
  if positions.size == 0:
    return 0.0
  precisions = np.arange(1, positions.size + 1) / positions
  return float(precisions.sum() / min(len(relevant), k))


def recall_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
  """Compute Recall@K for one user."""
  relevant = set(relevant)
  if not relevant:
    raise ValueError("recall is undefined for an empty relevant set")
  return float(_hit_positions(ranked, relevant, k).size / len(relevant))


def ndcg_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
  """Compute NDCG@K with binary gains for one user."""
  relevant = set(relevant)
  if not relevant:
    raise ValueError("NDCG is undefined for an empty relevant set")
  positions = _hit_positions(ranked, relevant, k)
  dcg = float(np.sum(1.0 / np.log2(positions + 1.0)))
  ideal_hits = min(len(relevant), k)
  idcg = sum(1.0 / math.log2(position + 1.0)
             for position in range(1, ideal_hits + 1))
  return dcg / idcg


def hit_rate_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
  """Return 1.0 when ranked[:k] contains any relevant item, else 0.0."""
  relevant = set(relevant)
  if not relevant:
    raise ValueError("hit rate is undefined for an empty relevant set")
  return 1.0 if _hit_positions(ranked, relevant, k).size else 0.0


_METRIC_FUNCTIONS = {
    MAP: average_precision_at_k,
    RECALL: recall_at_k,
    NDCG: ndcg_at_k,
    HIT_RATE: hit_rate_at_k,
}


def user_metrics(ranked: Sequence, relevant: Iterable,
                 ks: Sequence[int]) -> Dict[str, float]:
  """Compute every metric at every cut-off in `ks` for one user."""
  relevant = set(relevant)
  return {
      metric_key(name, k): function(ranked, relevant, k)
      for name, function in _METRIC_FUNCTIONS.items()
      for k in ks
  }


class MetricSums:
  """Running sums of per-user metrics, mergeable across workers."""

  def __init__(self):
    self.sums: Dict[str, float] = {}
    self.users = 0

  def add_user(self, ranked: Sequence, relevant: Iterable,
               ks: Sequence[int]) -> None:
    """Add one user; users with no relevant item are skipped."""
    relevant = set(relevant)
    if not relevant:
      return
    for key, value in user_metrics(ranked, relevant, ks).items():
      self.sums[key] = self.sums.get(key, 0.0) + value
    self.users += 1

  def merge(self, other: "MetricSums") -> None:
    for key, value in other.sums.items():
      self.sums[key] = self.sums.get(key, 0.0) + value
    self.users += other.users

  def means(self) -> Dict[str, float]:
    """Return each metric's mean over users; empty when no user was added."""
    if self.users == 0:
      return {}
    return {key: value / self.users for key, value in self.sums.items()}


def mean_over_users(ranked_lists: Iterable[Sequence],
                    relevant_sets: Iterable[Iterable],
                    ks: Sequence[int]) -> Dict[str, float]:
  """Average every metric over users with a non-empty relevant set."""
  sums = MetricSums()
  for ranked, relevant in zip(ranked_lists, relevant_sets):
    sums.add_user(ranked, relevant, ks)
  return sums.means()


def top_k_by_score(item_ids: Sequence, scores: Sequence[float], k: int) -> list:
  """Return the k ids with the highest scores, ties to the earlier id.

  This is the tie rule of `tf.math.top_k`, which the exported model uses,
  so baselines ranked here and the model break ties the same way.
  """
  order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
  return [item_ids[i] for i in order[:k]]

"""Item-to-item co-occurrence baseline ("users who rated this also rated").

Two items co-occur once for every training user whose positives contain
both, so C[i, j] is the number of such users (i != j). A holdout user with
history H gets score(j) = sum over distinct h in H of C[h, j]. Pairs are
counted over a user's whole training history, not within windows.

TODO: a windowed variant could pair each train positive with its
`touched_product_id` list (the N items before it); it is not implemented.

The matrix C is never built. With X the binary train-user x item matrix,
C = X^T X minus its diagonal, so a batch of histories B (users x items)
scores as (B X^T) X, minus B times each item's user count. That costs
O(nnz(X)) per batch however dense C would be.

Ties, including the all-zero scores of users whose history items co-occur
with nothing (or lie outside the catalog), are broken by popularity: the
score adds count / (max count + 1), which is below 1 and so never outranks
a co-occurrence count. Users without any co-occurrence signal thus get the
most-popular list; `diagnostics` counts them.
"""

from typing import Dict, Sequence

import numpy as np
from scipy import sparse

from baselines.data import HoldoutExample, Interactions
from baselines.ranking import Catalog, Ranker

HISTORY_TOUCHED = "touched"
HISTORY_SEEN = "seen"
HISTORY_CHOICES = (HISTORY_TOUCHED, HISTORY_SEEN)


def user_item_matrix(interactions: Interactions,
                     catalog: Catalog) -> sparse.csr_matrix:
  """Return the binary train-user x catalog matrix of positives."""
  positions = catalog.positions(interactions.items)
  in_catalog = np.array([item in catalog.index
                         for item in interactions.items], dtype=bool)
  users = interactions.users[in_catalog]
  _, user_rows = np.unique(users.astype(str), return_inverse=True)
  num_users = int(user_rows.max()) + 1 if user_rows.size else 0
  matrix = sparse.csr_matrix(
      (np.ones(positions.size, dtype=np.float64), (user_rows, positions)),
      shape=(num_users, len(catalog)))
  # Repeated (user, item) events sum in the constructor; count them once.
  matrix.data[:] = 1.0
  return matrix


class CooccurrenceRanker(Ranker):
  """Scores items by co-occurrence with the user's history items."""

  def __init__(self, catalog: Catalog, interactions: Interactions,
               popularity: np.ndarray, history: str = HISTORY_TOUCHED,
               name: str = "cooccurrence"):
    """Fit the co-occurrence statistics.

    Args:
      catalog: Items to rank.
      interactions: Training positives.
      popularity: Count of each catalog item, used to break ties.
      history: Holdout feature used as the history: "touched" (the last N
        items, the model's input) or "seen" (every item before the cut).
      name: Method name in reports.
    """
    super().__init__(catalog)
    if history not in HISTORY_CHOICES:
      raise ValueError(f"history must be one of {HISTORY_CHOICES}, "
                       f"got {history!r}")
    self.name = name
    self.history = history
    self.user_items = user_item_matrix(interactions, catalog)
    self.item_users = self.user_items.T.tocsr()
    self.users_per_item = np.asarray(self.user_items.sum(axis=0)).ravel()
    popularity = np.asarray(popularity, dtype=np.float64)
    self.tie_breaker = popularity / (popularity.max(initial=0.0) + 1.0)
    self.fallback_users = 0
    self.scored_users = 0

  def _history_matrix(self, users: Sequence[HoldoutExample]) -> sparse.csr_matrix:
    rows, columns = [], []
    for row, user in enumerate(users):
      items = user.touched if self.history == HISTORY_TOUCHED else user.seen
      positions = np.unique(self.catalog.positions(items))
      rows.extend([row] * positions.size)
      columns.extend(positions.tolist())
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, columns)),
        shape=(len(users), len(self.catalog)))

  def score(self, users: Sequence[HoldoutExample]) -> np.ndarray:
    history = self._history_matrix(users)
    counts = (history @ self.item_users) @ self.user_items
    counts = counts - history.multiply(self.users_per_item)
    counts = np.asarray(counts.todense())
    no_signal = ~np.any(counts > 0, axis=1)
    self.fallback_users += int(np.sum(no_signal))
    self.scored_users += len(users)
    return counts + self.tie_breaker

  def diagnostics(self) -> Dict[str, object]:
    return {"history": self.history,
            "popularity_fallback_users": self.fallback_users,
            "scored_users": self.scored_users}

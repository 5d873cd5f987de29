"""Most-popular baselines: the same list for everyone, minus seen items.

Popularity is the number of training positives of an item, so an item a
user rated twice counts twice. Recent popularity counts only the positives
of the last `recent_days` days before the end of the training period, which
tracks trends that all-time counts average away.
"""

from typing import Optional, Sequence

import numpy as np

from baselines.data import HoldoutExample
from baselines.ranking import Catalog, Ranker

SECONDS_PER_DAY = 86_400
DEFAULT_RECENT_DAYS = 28


def item_counts(items: Sequence[str], catalog: Catalog) -> np.ndarray:
  """Return the number of events of each catalog item, in catalog order.

  Items outside the catalog are ignored.
  """
  counts = np.zeros(len(catalog), dtype=np.float64)
  positions = catalog.positions(items)
  np.add.at(counts, positions, 1.0)
  return counts


def recent_item_counts(items: Sequence[str], timestamps: Sequence[int],
                       catalog: Catalog,
                       recent_days: float = DEFAULT_RECENT_DAYS,
                       end_timestamp: Optional[int] = None) -> np.ndarray:
  """Count each catalog item's events in (end - recent_days, end].

  Args:
    items: Item of each event.
    timestamps: Unix seconds of each event.
    catalog: Items to count, in output order.
    recent_days: Window length in days.
    end_timestamp: End of the window in Unix seconds, inclusive. None uses
      the latest timestamp, i.e. the end of the training period.

  Returns:
    Counts in catalog order; zero for items without a recent event.
  """
  timestamps = np.asarray(timestamps, dtype=np.int64)
  items = np.asarray(items, dtype=object)
  if timestamps.shape != items.shape:
    raise ValueError(f"items ({items.shape}) and timestamps "
                     f"({timestamps.shape}) must have one entry per event")
  if recent_days <= 0:
    raise ValueError(f"recent_days must be positive, got {recent_days}")
  if timestamps.size == 0:
    return np.zeros(len(catalog), dtype=np.float64)
  end = int(timestamps.max()) if end_timestamp is None else int(end_timestamp)
  start = end - recent_days * SECONDS_PER_DAY
  in_window = (timestamps > start) & (timestamps <= end)
  return item_counts(items[in_window], catalog)


class PopularityRanker(Ranker):
  """Scores every user's catalog with one fixed vector of item counts."""

  def __init__(self, catalog: Catalog, counts: np.ndarray,
               name: str = "most_popular"):
    super().__init__(catalog)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (len(catalog),):
      raise ValueError(f"expected one count per catalog item "
                       f"({len(catalog)}), got shape {counts.shape}")
    self.counts = counts
    self.name = name

  def score(self, users: Sequence[HoldoutExample]) -> np.ndarray:
    return np.broadcast_to(self.counts, (len(users), len(self.catalog)))

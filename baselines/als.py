"""Implicit-feedback matrix factorization with Spark MLlib's ALS.

Spark's ALS with `implicitPrefs=True` follows Hu, Koren and Volinsky,
"Collaborative Filtering for Implicit Feedback Datasets" (ICDM 2008), as
Spark's collaborative filtering guide (spark.apache.org/docs, 3.5) states. Every
(user, item) cell is a preference of 1 or 0, weighted by the confidence
1 + alpha * r. Here r is the number of training positives of the pair.
Users and items get integer indices from the sorted catalog and the
sorted training users, so the item id space is the model's.

Scores are dot products of user and item factors, computed with numpy over
the whole catalog on the driver. Both factor matrices are collected as
float64: an estimated 0.5 GB each for 10^6 users or items at rank 64.
Beyond that, use `ALSModel.recommendForUserSubset` instead. Holdout users
who have no training positive have no factors and get the most-popular
scores; `diagnostics` counts them.
"""

import dataclasses
import os
import sys
from typing import Dict, Optional, Sequence

import numpy as np

from baselines.data import HoldoutExample, Interactions
from baselines.ranking import Catalog, Ranker


@dataclasses.dataclass(frozen=True)
class AlsSettings:
  """Hyperparameters of `pyspark.ml.recommendation.ALS`."""

  rank: int = 32
  reg_param: float = 0.1
  alpha: float = 10.0
  max_iter: int = 10
  seed: int = 0
  # Fixed block counts keep the factorization, and so the result for a
  # given seed, independent of the Spark session's parallelism.
  num_blocks: int = 2


def local_session(app_name: str = "baselines"):
  """Start or reuse a local[2] SparkSession bound to the loopback interface."""
  from pyspark.sql import SparkSession  # pylint: disable=g-import-not-at-top

  os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
  return (SparkSession.builder.master("local[2]").appName(app_name)
          .config("spark.driver.memory", "2g")
          .config("spark.sql.shuffle.partitions", "4")
          .config("spark.driver.host", "127.0.0.1")
          .config("spark.driver.bindAddress", "127.0.0.1")
          .config("spark.ui.enabled", "false")
          .config("spark.ui.showConsoleProgress", "false")
          .getOrCreate())


def _factor_matrix(rows, size: int, rank: int) -> np.ndarray:
  """Place collected (id, features) rows into a dense [size, rank] array.

  Rows of ids that ALS never saw stay zero.
  """
  matrix = np.zeros((size, rank), dtype=np.float64)
  for row in rows:
    matrix[row["id"]] = row["features"]
  return matrix


class AlsRanker(Ranker):
  """Ranks the catalog by ALS user-item factor dot products."""

  def __init__(self, catalog: Catalog, interactions: Interactions,
               popularity: np.ndarray, settings: AlsSettings = AlsSettings(),
               spark=None, name: str = "als"):
    """Train ALS on the training positives.

    Args:
      catalog: Items to rank; events of other items are dropped.
      interactions: Training positives.
      popularity: Count of each catalog item, the fallback scores.
      settings: ALS hyperparameters.
      spark: SparkSession to train in; None starts `local_session()`.
      name: Method name in reports.
    """
    from pyspark.ml.recommendation import ALS  # pylint: disable=g-import-not-at-top

    super().__init__(catalog)
    self.name = name
    self.settings = settings
    self.popularity = np.asarray(popularity, dtype=np.float64)
    self.user_index: Dict[str, int] = {
        user: i for i, user in enumerate(sorted(set(interactions.users)))}
    self.fallback_users = 0
    self.scored_users = 0

    pair_counts: Dict[tuple, int] = {}
    for user, item in zip(interactions.users, interactions.items):
      position = catalog.index.get(item)
      if position is None:
        continue
      key = (self.user_index[user], position)
      pair_counts[key] = pair_counts.get(key, 0) + 1
    if not pair_counts:
      raise ValueError("ALS needs at least one training positive in the "
                       "catalog")

    spark = spark or local_session()
    frame = spark.createDataFrame(
        [(user, item, float(count))
         for (user, item), count in sorted(pair_counts.items())],
        "user int, item int, rating float")
    model = ALS(rank=settings.rank, regParam=settings.reg_param,
                alpha=settings.alpha, maxIter=settings.max_iter,
                seed=settings.seed, implicitPrefs=True,
                numUserBlocks=settings.num_blocks,
                numItemBlocks=settings.num_blocks,
                userCol="user", itemCol="item", ratingCol="rating").fit(frame)
    self.user_factors = _factor_matrix(model.userFactors.collect(),
                                       len(self.user_index), settings.rank)
    self.item_factors = _factor_matrix(model.itemFactors.collect(),
                                       len(catalog), settings.rank)

  def score(self, users: Sequence[HoldoutExample]) -> np.ndarray:
    rows = np.array([self.user_index.get(user.user_id, -1) for user in users],
                    dtype=np.int64)
    known = rows >= 0
    scores = np.empty((len(users), len(self.catalog)), dtype=np.float64)
    scores[known] = self.user_factors[rows[known]] @ self.item_factors.T
    scores[~known] = self.popularity
    self.fallback_users += int(np.sum(~known))
    self.scored_users += len(users)
    return scores

  def diagnostics(self) -> Dict[str, object]:
    return {"settings": dataclasses.asdict(self.settings),
            "popularity_fallback_users": self.fallback_users,
            "scored_users": self.scored_users}

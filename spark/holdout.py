"""Holdout cut, train/eval split and per-user holdout examples.

Every event gets one split code. Holdout events (after the holdout cut) only
feed the per-user holdout examples. Events of the training period are
positives of `train` or `eval`. The eval split is either the latest part of
the training period (a second time cut) or all events of a seeded share of
users. Both keep a user's neighbouring events from landing on both sides of
the split by chance, as a random row split would.
"""

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from schemas import features
from spark import ratings_reader as rr
from spark import windows
from spark.config import ExampleJobConfig

SPLIT = "split"
TRAIN_CODE = 0
EVAL_CODE = 1
HOLDOUT_CODE = 2

# Resolution of the eval user hash: shares are rounded to 1e-9.
_USER_HASH_BUCKETS = 10**9


@dataclasses.dataclass(frozen=True)
class Cuts:
    """Timestamps (Unix seconds) that separate the splits; None if unused."""

    holdout_cut: Optional[int]
    eval_cut: Optional[int]


def nearest_rank_cut(timestamps: np.ndarray, counts: np.ndarray,
                     quantile: float) -> int:
    """Return the exact quantile of event timestamps by the nearest-rank rule.

    The cut is the smallest timestamp t such that at least `quantile` of the
    events have a timestamp <= t. Events at the cut stay on the early side.

    Args:
      timestamps: Distinct timestamps, ascending.
      counts: Number of events at each timestamp.
      quantile: In (0, 1].
    """
    total = int(np.sum(counts))
    if total == 0:
        raise ValueError("Cannot compute a quantile of zero events.")
    # Rounding first keeps 0.9 * 10 from becoming rank 10 through
    # floating-point error (0.9 * 10 == 9.000000000000002).
    rank = max(1, math.ceil(round(quantile * total, 9)))
    position = int(np.searchsorted(np.cumsum(counts), rank, side="left"))
    return int(timestamps[position])


def _timestamp_histogram(ratings: DataFrame) -> Tuple[np.ndarray, np.ndarray]:
    # NOTE: one row per distinct timestamp reaches the driver. Day-resolution
    # data gives thousands; second-resolution logs can give millions.
    rows = ratings.groupBy(rr.TIMESTAMP).count().orderBy(rr.TIMESTAMP).collect()
    timestamps = np.array([row[0] for row in rows], dtype=np.int64)
    counts = np.array([row[1] for row in rows], dtype=np.int64)
    return timestamps, counts


def eval_user_column(seed: int, fraction: float) -> Column:
    """Return a boolean column that is True for users sent to eval.

    Uses Spark's xxhash64 of (seed, user id), which is stable across runs and
    machines, so the same users go to eval for the same seed.
    """
    bucket = F.pmod(F.xxhash64(F.lit(str(seed)), F.col(rr.USER)),
                    F.lit(_USER_HASH_BUCKETS))
    return bucket < F.lit(int(round(fraction * _USER_HASH_BUCKETS)))


def assign_splits(ratings: DataFrame,
                  config: ExampleJobConfig) -> Tuple[DataFrame, Cuts]:
    """Add the SPLIT column (TRAIN_CODE, EVAL_CODE or HOLDOUT_CODE).

    Args:
      ratings: Valid, de-duplicated events with USER, ITEM, RATING, TIMESTAMP.
      config: Job settings; see `ExampleJobConfig` for the holdout and eval
        modes.

    Returns:
      The events with SPLIT added, and the cut timestamps.
    """
    holdout_cut = None
    if config.holdout == "global_time":
        timestamps, counts = _timestamp_histogram(ratings)
        holdout_cut = nearest_rank_cut(timestamps, counts,
                                       config.holdout_quantile)
        in_training = F.col(rr.TIMESTAMP) <= F.lit(holdout_cut)
        keep = timestamps <= holdout_cut
        training_timestamps, training_counts = timestamps[keep], counts[keep]
    else:
        # Rank of each event within its user, in the job's event order.
        by_user = Window.partitionBy(rr.USER)
        ordered = by_user.orderBy(*windows.EVENT_ORDER)
        ratings = (ratings
                   .withColumn("_rank", F.row_number().over(ordered))
                   .withColumn("_events", F.count(F.lit(1)).over(by_user)))
        cut = config.per_user_cut
        in_training = (F.col("_events") < cut) | (F.col("_rank") < cut)
        training_timestamps, training_counts = _timestamp_histogram(
            ratings.where(in_training))

    eval_cut = None
    if config.eval_split == "time":
        eval_cut = nearest_rank_cut(training_timestamps, training_counts,
                                    config.eval_quantile)
        is_eval = F.col(rr.TIMESTAMP) > F.lit(eval_cut)
    else:
        is_eval = eval_user_column(config.seed, config.eval_user_fraction)

    split = (F.when(~in_training, F.lit(HOLDOUT_CODE))
             .when(is_eval, F.lit(EVAL_CODE))
             .otherwise(F.lit(TRAIN_CODE))
             .cast("byte"))
    with_split = ratings.select(rr.USER, rr.ITEM, rr.RATING, rr.TIMESTAMP,
                                split.alias(SPLIT))
    return with_split, Cuts(holdout_cut=holdout_cut, eval_cut=eval_cut)


@dataclasses.dataclass
class HoldoutUser:
    """Features of one user's holdout example, ids as strings."""

    touched: List[str]
    liked: List[str]
    disliked: List[str]
    seen: List[str]
    holdout_items: List[str]
    history_length: int


def build_holdout_user(items: Sequence[str], ratings: Sequence[float],
                       training_events: int,
                       window: int) -> Tuple[Optional[HoldoutUser], str]:
    """Build the holdout example of one user.

    Args:
      items: The user's items in event order.
      ratings: The matching ratings.
      training_events: Number of leading events that lie before the cut.
      window: History length N.

    Returns:
      A pair of the example (None when there is none) and its status:
      "example", "cold_start" (no event before the cut), "all_seen" (every
      item after the cut was already rated before it) or "no_holdout" (no
      event after the cut).
    """
    if training_events == len(items):
        return None, "no_holdout"
    if training_events == 0:
        return None, "cold_start"
    seen_set = set(items[:training_events])
    holdout_items = []
    for item in items[training_events:]:
        if item not in seen_set:
            holdout_items.append(item)
            # Later repeats of the item are not new; keep first occurrence.
            seen_set.add(item)
    if not holdout_items:
        return None, "all_seen"
    start = max(0, training_events - window)
    recent = range(start, training_events)
    return HoldoutUser(
        touched=[items[i] for i in recent],
        liked=[items[i] for i in recent if ratings[i] > features.LIKED_ABOVE],
        disliked=[items[i] for i in recent
                  if ratings[i] < features.DISLIKED_BELOW],
        # Python sorts str by code point, which matches Spark's UTF-8 order.
        seen=sorted(set(items[:training_events])),
        holdout_items=holdout_items,
        history_length=training_events,
    ), "example"

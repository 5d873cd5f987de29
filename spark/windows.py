"""Event order and history windows.

Amazon timestamps have day resolution, so one user often has several events
with the same timestamp. Events are therefore ordered by (timestamp, item id,
rating). Exact duplicates are dropped first, so this key is unique per user
and the order, the windows and the holdout boundary are the same on every
run.
"""

from typing import Tuple

import numpy as np
from pyspark.sql import DataFrame

from spark import ratings_reader as rr

# Sort key of one user's events, after the user id.
EVENT_ORDER = (rr.TIMESTAMP, rr.ITEM, rr.RATING)


def shard_and_sort(ratings: DataFrame, num_shards: int) -> DataFrame:
    """Hash-partition events by user into `num_shards` partitions and sort them.

    Each partition contains whole users, and within it the rows are sorted by
    user and then by EVENT_ORDER. Spark's hash partitioning (Murmur3 of the
    user id) is deterministic, so partition i always holds the same users and
    becomes output shard i.
    """
    return (ratings.repartition(num_shards, rr.USER)
            .sortWithinPartitions(rr.USER, *EVENT_ORDER))


def group_rows(users: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Find runs of equal user ids in rows sorted by user.

    Args:
      users: User id of each row; rows of one user are contiguous.

    Returns:
      A pair: the group index of each row, and the first row of each group.
    """
    count = len(users)
    starts_group = np.ones(count, dtype=bool)
    if count > 1:
        starts_group[1:] = users[1:] != users[:-1]
    group_index = np.cumsum(starts_group) - 1
    return group_index, np.flatnonzero(starts_group)


def window_starts(group_first_row: np.ndarray, window: int) -> np.ndarray:
    """Return the first row of each row's history window.

    The history of row i is rows [start, i): at most `window` rows, all of
    the same user and strictly before row i in event order.

    Args:
      group_first_row: First row of each row's group (user), per row.
      window: Maximum history length N.
    """
    rows = np.arange(len(group_first_row))
    return np.maximum(rows - window, group_first_row)

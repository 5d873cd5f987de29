"""Uniform negative sampling from a catalog, vectorised over many users.

For each user the sampler draws items uniformly from the catalog minus the
user's excluded items (their positives), with replacement: one user may get
the same negative twice. Draws come from a counter-based generator keyed by
a BLAKE2b hash of (seed, split, user id), so they depend neither on Spark's
partitioning nor on which other users share a batch.

The mapping from a uniform draw to an item is exact. Let p be a user's sorted,
unique excluded catalog indices and C the catalog size. Then q[i] = p[i] - i
counts the allowed indices below p[i], and q is non-decreasing. For a draw r
in [0, C - len(p)), the r-th allowed index (0-based) is x = r + #{i: p[i] < x},
and p[i] < x is true exactly when q[i] <= r. So x = r + #{i: q[i] <= r}, which is
`r + searchsorted(q, r, side="right")`. Every allowed index is reachable and
no excluded index is.
"""

import hashlib
from typing import Sequence, Tuple

import numpy as np

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def user_key(seed: int, split: str, user_id: str) -> int:
    """Return the 64-bit stream key of one user's draws in one split."""
    digest = hashlib.blake2b(
        f"{seed}\x00{split}\x00{user_id}".encode("utf-8"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def user_keys(seed: int, split: str, user_ids: Sequence[str]) -> np.ndarray:
    """Return `user_key` of each user id as a uint64 array."""
    return np.fromiter((user_key(seed, split, user) for user in user_ids),
                       dtype=np.uint64, count=len(user_ids))


def _splitmix64(state: np.ndarray) -> np.ndarray:
    """Mix uint64 states into uniform uint64 outputs (SplitMix64 finaliser).

    Source: Steele, Lea, Flood, "Fast splittable pseudorandom number
    generators", OOPSLA 2014; constants as in Vigna's public-domain C code.
    """
    z = state + _GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_draws(keys: np.ndarray, counters: np.ndarray,
                  bounds: np.ndarray) -> np.ndarray:
    """Return one integer per draw, uniform in [0, bound).

    Args:
      keys: uint64 stream key of each draw's user.
      counters: Index of each draw within its user's stream.
      bounds: Exclusive upper bound of each draw; must be positive.
    """
    with np.errstate(over="ignore"):
        state = keys + counters.astype(np.uint64) * _GOLDEN_GAMMA
        bits = _splitmix64(state)
    # 53 random bits give a double in [0, 1); the bias of scaling it to the
    # bound is below bound / 2**53.
    unit = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    draws = np.floor(unit * bounds).astype(np.int64)
    return np.minimum(draws, bounds - 1)


def sample_negatives(
    catalog_size: int,
    excluded_groups: np.ndarray,
    excluded_items: np.ndarray,
    draw_groups: np.ndarray,
    draw_counters: np.ndarray,
    group_keys: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray]:
    """Draw negatives for many users at once.

    Args:
      catalog_size: Number C of catalog items; indices are 0 to C-1.
      excluded_groups: User (group) index of each excluded item, int64.
      excluded_items: Catalog index of each excluded item. Pairs may repeat
        and come in any order.
      draw_groups: Group index of each requested draw.
      draw_counters: Index of each draw within its group's stream; a draw's
        value depends only on its group key and counter.
      group_keys: uint64 stream key of each group, indexed by group index.

    Returns:
      A pair of the drawn catalog indices (int64, -1 where the draw was
      impossible) and a boolean array that is True for those impossible
      draws, which belong to users who rated the whole catalog.
    """
    num_groups = len(group_keys)
    draw_groups = np.asarray(draw_groups, dtype=np.int64)
    stride = catalog_size + 1

    # Sorted unique (group, item) pairs; within each group the items are
    # ascending, which the searchsorted mapping needs.
    pair_keys = np.unique(
        np.asarray(excluded_groups, dtype=np.int64) * stride +
        np.asarray(excluded_items, dtype=np.int64))
    pair_groups = pair_keys // stride
    pair_items = pair_keys % stride
    excluded_counts = np.bincount(pair_groups, minlength=num_groups)
    block_starts = np.concatenate(([0], np.cumsum(excluded_counts)[:-1]))
    rank_in_group = np.arange(len(pair_keys)) - block_starts[pair_groups]
    # q = p - rank, offset by group so one sorted array serves all groups:
    # q < C + 1 keeps each group's block apart from its neighbours.
    shifted_q = pair_groups * stride + (pair_items - rank_in_group)

    allowed = catalog_size - excluded_counts[draw_groups]
    impossible = allowed <= 0
    result = np.full(len(draw_groups), -1, dtype=np.int64)
    possible = ~impossible
    if not possible.any():
        return result, impossible

    groups = draw_groups[possible]
    draws = uniform_draws(
        np.asarray(group_keys, dtype=np.uint64)[groups],
        np.asarray(draw_counters)[possible], allowed[possible])
    below = np.searchsorted(shifted_q, groups * stride + draws, side="right")
    result[possible] = draws + (below - block_starts[groups])
    return result, impossible


def sample_for_user(catalog_size: int, excluded: Sequence[int], count: int,
                    key: int) -> np.ndarray:
    """Draw `count` negatives for one user (convenience wrapper for tests).

    Returns:
      Catalog indices, empty when the user excluded the whole catalog.
    """
    excluded = np.asarray(excluded, dtype=np.int64)
    draws, impossible = sample_negatives(
        catalog_size,
        np.zeros(len(excluded), dtype=np.int64), excluded,
        np.zeros(count, dtype=np.int64), np.arange(count, dtype=np.int64),
        np.array([key], dtype=np.uint64))
    return draws[~impossible]

"""Tests of the vectorised negative sampler (no Spark needed)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spark import negative_sampler as ns


def _allowed(catalog_size, excluded):
    return sorted(set(range(catalog_size)) - set(excluded))


@given(st.integers(1, 60).flatmap(
    lambda size: st.tuples(
        st.just(size),
        st.lists(st.integers(0, size - 1), max_size=2 * size))))
def test_rank_mapping_matches_brute_force(case):
    """r + searchsorted(p - arange(len(p)), r, 'right') is the r-th allowed."""
    catalog_size, excluded = case
    p = np.unique(np.asarray(excluded, dtype=np.int64))
    allowed = _allowed(catalog_size, excluded)
    r = np.arange(len(allowed))
    mapped = r + np.searchsorted(p - np.arange(len(p)), r, side="right")
    assert mapped.tolist() == allowed


@given(st.integers(1, 40).flatmap(
    lambda size: st.tuples(
        st.just(size),
        st.lists(st.integers(0, size - 1), max_size=size),
        st.integers(0, 2**32))))
def test_negatives_never_excluded(case):
    catalog_size, excluded, seed = case
    key = ns.user_key(seed, "train", "user")
    draws = ns.sample_for_user(catalog_size, excluded, 50, key)
    allowed = set(_allowed(catalog_size, excluded))
    if not allowed:
        assert len(draws) == 0
    else:
        assert len(draws) == 50
        assert set(draws.tolist()) <= allowed


@settings(max_examples=30)
@given(st.lists(st.lists(st.integers(0, 29), max_size=10), min_size=1,
                max_size=8),
       st.integers(0, 2**32))
def test_batch_sampling_matches_per_user(excluded_per_user, seed):
    """Draws of one user do not depend on the other users in the batch."""
    catalog_size = 30
    groups = np.concatenate([np.full(len(items), g, dtype=np.int64)
                             for g, items in enumerate(excluded_per_user)])
    items = np.concatenate([np.asarray(items, dtype=np.int64)
                            for items in excluded_per_user])
    keys = ns.user_keys(seed, "eval",
                        [f"user{g}" for g in range(len(excluded_per_user))])
    draw_groups = np.repeat(np.arange(len(excluded_per_user)), 5)
    counters = np.tile(np.arange(5), len(excluded_per_user))
    drawn, impossible = ns.sample_negatives(
        catalog_size, groups, items, draw_groups, counters, keys)
    assert not impossible.any()
    for g, excluded in enumerate(excluded_per_user):
        alone = ns.sample_for_user(catalog_size, excluded, 5, int(keys[g]))
        assert drawn[draw_groups == g].tolist() == alone.tolist()


def test_padding_index_never_drawn():
    """Indices stay in [0, C); the sampler has no padding id to draw."""
    key = ns.user_key(0, "train", "u")
    draws = ns.sample_for_user(5, [1, 3], 10_000, key)
    assert draws.min() >= 0
    assert draws.max() <= 4


def test_every_allowed_item_drawn():
    catalog_size = 50
    excluded = [0, 7, 8, 9, 49]
    key = ns.user_key(3, "train", "u")
    draws = ns.sample_for_user(catalog_size, excluded, 20_000, key)
    assert set(draws.tolist()) == set(_allowed(catalog_size, excluded))


def test_draws_roughly_uniform():
    catalog_size = 10
    key = ns.user_key(1, "train", "u")
    draws = ns.sample_for_user(catalog_size, [4], 90_000, key)
    counts = np.bincount(draws, minlength=catalog_size)
    assert counts[4] == 0
    # 10,000 expected per allowed item; 5 standard deviations is about 480.
    assert np.all(np.abs(np.delete(counts, 4) - 10_000) < 500)


def test_same_seed_same_draws():
    first = ns.sample_for_user(100, [1, 2], 20, ns.user_key(7, "train", "u"))
    second = ns.sample_for_user(100, [1, 2], 20, ns.user_key(7, "train", "u"))
    assert first.tolist() == second.tolist()


def test_different_seed_different_draws():
    first = ns.sample_for_user(1000, [1, 2], 20, ns.user_key(7, "train", "u"))
    second = ns.sample_for_user(1000, [1, 2], 20, ns.user_key(8, "train", "u"))
    assert first.tolist() != second.tolist()


def test_user_key_stable_value():
    """The key must not change between Python processes or versions."""
    assert ns.user_key(0, "train", "u1") == ns.user_key(0, "train", "u1")
    assert ns.user_key(0, "train", "u1") != ns.user_key(0, "eval", "u1")
    assert ns.user_key(0, "train", "u1") == int.from_bytes(
        __import__("hashlib").blake2b(b"0\x00train\x00u1",
                                      digest_size=8).digest(), "little")


def test_full_catalog_user_impossible():
    keys = ns.user_keys(0, "train", ["full", "partial"])
    drawn, impossible = ns.sample_negatives(
        3, np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0]),
        np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), keys)
    assert impossible.tolist() == [True, True, False, False]
    assert drawn[:2].tolist() == [-1, -1]
    assert set(drawn[2:].tolist()) <= {1, 2}


def test_empty_catalog_all_impossible():
    drawn, impossible = ns.sample_negatives(
        0, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
        np.array([0, 0]), np.array([0, 1]), ns.user_keys(0, "train", ["u"]))
    assert impossible.all()
    assert drawn.tolist() == [-1, -1]

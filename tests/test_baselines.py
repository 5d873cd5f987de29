"""Popularity and co-occurrence baselines on hand-made data.

Training positives of every test here:

    u1: a b c    u2: a b    u3: a d    u4: b c    u5: e

Item counts: a 3, b 3, c 2, d 1, e 1, so the most-popular order is
a b c d e (a before b on the tie because the catalog is sorted by id).
Co-occurrence (users with both items): ab 2, ac 1, ad 1, bc 2, all other
pairs 0.
"""

import numpy as np
import pytest

from baselines import cooccurrence
from baselines import popularity
from baselines.data import HoldoutExample, Interactions
from baselines.ranking import Catalog, rank_users

POSITIVES = [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"),
             ("u3", "a"), ("u3", "d"), ("u4", "b"), ("u4", "c"), ("u5", "e")]


def interactions() -> Interactions:
  users, items = zip(*POSITIVES)
  return Interactions(np.array(users, dtype=object),
                      np.array(items, dtype=object))


def holdout_user(user_id, touched, seen=None, relevant=("x",)):
  seen = list(touched) if seen is None else list(seen)
  return HoldoutExample(user_id=user_id, touched=list(touched), liked=[],
                        disliked=[], seen=seen, relevant=list(relevant),
                        history_length=len(seen))


@pytest.fixture(name="catalog")
def fixture_catalog():
  return Catalog(interactions().catalog())


def test_catalog_is_sorted_training_items(catalog):
  assert catalog.ids.tolist() == ["a", "b", "c", "d", "e"]


def test_catalog_rejects_unsorted_ids():
  with pytest.raises(ValueError, match="sorted"):
    Catalog(["b", "a"])


def test_item_counts(catalog):
  counts = popularity.item_counts(interactions().items, catalog)
  assert counts.tolist() == [3, 3, 2, 1, 1]


def test_most_popular_excludes_seen(catalog):
  ranker = popularity.PopularityRanker(
      catalog, popularity.item_counts(interactions().items, catalog))
  users = [holdout_user("h1", ["a"]), holdout_user("h2", ["e"]),
           holdout_user("h3", ["b", "c"])]
  ranked = rank_users(ranker, users, k=3)
  assert ranked["h1"] == ["b", "c", "d"]
  assert ranked["h2"] == ["a", "b", "c"]
  assert ranked["h3"] == ["a", "d", "e"]


def test_most_popular_keeps_seen_when_asked(catalog):
  ranker = popularity.PopularityRanker(
      catalog, popularity.item_counts(interactions().items, catalog))
  ranked = rank_users(ranker, [holdout_user("h1", ["a"])], k=3,
                      exclude_seen=False)
  assert ranked["h1"] == ["a", "b", "c"]


def test_list_is_short_when_catalog_runs_out(catalog):
  ranker = popularity.PopularityRanker(
      catalog, popularity.item_counts(interactions().items, catalog))
  ranked = rank_users(ranker, [holdout_user("h1", ["a", "b", "c"])], k=10)
  assert ranked["h1"] == ["d", "e"]


def test_recent_counts_use_half_open_window(catalog):
  day = popularity.SECONDS_PER_DAY
  items = ["a", "a", "d", "c", "c", "b"]
  # The window is (2 days - 1 day, 2 days]: "d" at exactly 1 day is out.
  timestamps = [0, 10, day, 2 * day - 100, 2 * day - 50, 2 * day]
  counts = popularity.recent_item_counts(items, timestamps, catalog,
                                         recent_days=1)
  assert counts.tolist() == [0, 1, 2, 0, 0]


def test_recent_counts_with_explicit_end(catalog):
  day = popularity.SECONDS_PER_DAY
  counts = popularity.recent_item_counts(
      ["a", "b", "b"], [day, 5 * day, 5 * day], catalog, recent_days=2,
      end_timestamp=2 * day)
  assert counts.tolist() == [1, 0, 0, 0, 0]


def test_recent_counts_reject_mismatched_lengths(catalog):
  with pytest.raises(ValueError, match="one entry per event"):
    popularity.recent_item_counts(["a", "b"], [1], catalog)


def cooccurrence_ranker(catalog, history=cooccurrence.HISTORY_TOUCHED):
  data = interactions()
  return cooccurrence.CooccurrenceRanker(
      catalog, data, popularity.item_counts(data.items, catalog),
      history=history)


def test_cooccurrence_ranks_neighbours_first(catalog):
  ranker = cooccurrence_ranker(catalog)
  users = [
      # c co-occurs with b twice and with a once; d and e never, so they
      # follow in popularity order (d before e on the tie, by id).
      holdout_user("c_fan", ["c"]),
      # d co-occurs only with a.
      holdout_user("d_fan", ["d"]),
      # a and b together: c scores 1 + 2, d scores 1 + 0.
      holdout_user("ab_fan", ["a", "b"]),
  ]
  ranked = rank_users(ranker, users, k=4)
  assert ranked["c_fan"] == ["b", "a", "d", "e"]
  assert ranked["d_fan"] == ["a", "b", "c", "e"]
  assert ranked["ab_fan"] == ["c", "d", "e"]


def test_cooccurrence_falls_back_to_popularity(catalog):
  ranker = cooccurrence_ranker(catalog)
  users = [holdout_user("e_fan", ["e"]),
           holdout_user("unknown_items", ["zzz"], seen=["zzz"])]
  ranked = rank_users(ranker, users, k=4)
  assert ranked["e_fan"] == ["a", "b", "c", "d"]
  assert ranked["unknown_items"] == ["a", "b", "c", "d"]
  assert ranker.diagnostics()["popularity_fallback_users"] == 2


def test_cooccurrence_ignores_self_pairs_with_seen_kept(catalog):
  ranker = cooccurrence_ranker(catalog)
  ranked = rank_users(ranker, [holdout_user("c_fan", ["c"])], k=5,
                      exclude_seen=False)
  # c's own count (2 users) is not a co-occurrence, so c ranks by its
  # popularity tie-breaker only, after a.
  assert ranked["c_fan"] == ["b", "a", "c", "d", "e"]


def test_cooccurrence_history_seen_uses_all_items(catalog):
  ranker = cooccurrence_ranker(catalog, history=cooccurrence.HISTORY_SEEN)
  # touched holds only e, which has no neighbours; seen adds d (-> a).
  user = holdout_user("h", ["e"], seen=["d", "e"])
  ranked = rank_users(ranker, [user], k=3)
  assert ranked["h"] == ["a", "b", "c"]
  assert ranker.diagnostics()["popularity_fallback_users"] == 0


def test_cooccurrence_counts_repeated_events_once(catalog):
  data = interactions()
  repeated = Interactions(np.append(data.users, ["u3", "u3"]),
                          np.append(data.items, ["d", "d"]))
  ranker = cooccurrence.CooccurrenceRanker(
      catalog, repeated, popularity.item_counts(data.items, catalog))
  scores = ranker.score([holdout_user("d_fan", ["d"])])
  assert int(scores[0][0]) == 1


def test_cooccurrence_rejects_unknown_history(catalog):
  with pytest.raises(ValueError, match="history must be one of"):
    cooccurrence_ranker(catalog, history="liked")

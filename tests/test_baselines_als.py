"""ALS baseline on a tiny two-cluster input with a fixed seed."""

import numpy as np
import pytest

from baselines import als
from baselines import popularity
from baselines.data import HoldoutExample, Interactions
from baselines.ranking import Catalog, rank_users

# Users 1-4 rate a b c, users 5-8 rate d e f, except that users 1 and 5
# miss the third item of their cluster, which ALS should then rank first.
_CLUSTERS = {f"u{i}": ["a", "b", "c"] for i in range(1, 5)}
_CLUSTERS.update({f"u{i}": ["d", "e", "f"] for i in range(5, 9)})
_CLUSTERS["u1"] = ["a", "b"]
_CLUSTERS["u5"] = ["d", "e"]
# "b" is the most popular item, so the popularity fallback starts with it.
_CLUSTERS["u9"] = ["b"]
# Rank 2 fits one factor per cluster. With rank 4 and little regularization
# ALS has room to fit u1's and u5's missing cells as zeros instead.
SETTINGS = als.AlsSettings(rank=2, reg_param=0.1, alpha=1.0, max_iter=5,
                           seed=7)


def interactions() -> Interactions:
  pairs = [(user, item) for user, items in _CLUSTERS.items()
           for item in items]
  users, items = zip(*pairs)
  return Interactions(np.array(users, dtype=object),
                      np.array(items, dtype=object))


def user(user_id, seen):
  return HoldoutExample(user_id=user_id, touched=list(seen), liked=[],
                        disliked=[], seen=list(seen), relevant=["x"],
                        history_length=len(seen))


def fit(spark):
  data = interactions()
  catalog = Catalog(data.catalog())
  return als.AlsRanker(catalog, data,
                       popularity.item_counts(data.items, catalog),
                       SETTINGS, spark=spark)


@pytest.fixture(name="fitted", scope="module")
def fixture_fitted(spark):
  return fit(spark)


def test_als_completes_each_cluster(fitted):
  ranker = fitted
  ranked = rank_users(ranker, [user("u1", ["a", "b"]),
                               user("u5", ["d", "e"])], k=1)
  assert ranked["u1"] == ["c"]
  assert ranked["u5"] == ["f"]


def test_als_unknown_user_gets_popularity(spark):
  # A fresh fit, so that the fallback counters start at zero.
  ranker = fit(spark)
  ranked = rank_users(ranker, [user("newcomer", ["a"])], k=2)
  # Counts: b 5, then a, d, e 4 each; a is seen, d wins the tie by id.
  assert ranked["newcomer"] == ["b", "d"]
  diagnostics = ranker.diagnostics()
  assert diagnostics["popularity_fallback_users"] == 1
  assert diagnostics["scored_users"] == 1


def test_als_is_repeatable_with_seed(spark, fitted):
  first, second = fitted, fit(spark)
  np.testing.assert_allclose(first.user_factors, second.user_factors,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(first.item_factors, second.item_factors,
                             rtol=1e-5, atol=1e-6)


def test_als_rejects_input_outside_catalog(spark):
  data = interactions()
  with pytest.raises(ValueError, match="at least one training positive"):
    als.AlsRanker(Catalog(["zzz"]), data, np.zeros(1), SETTINGS, spark=spark)

"""Ranking metrics against values computed by hand."""

import math

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from evaluation import ranking_metrics as rm
from evaluation import tfma_metrics


def test_two_hits_in_four():
  ranked, relevant = ["a", "b", "c", "d"], {"a", "c"}
  # Hits at 1 and 3: (1/1 + 2/3) / min(2, 4).
  assert rm.average_precision_at_k(ranked, relevant, 4) == pytest.approx(5 / 6)
  assert rm.recall_at_k(ranked, relevant, 4) == 1.0
  ideal = 1 + 1 / math.log2(3)
  assert rm.ndcg_at_k(ranked, relevant, 4) == pytest.approx(1.5 / ideal)
  assert rm.hit_rate_at_k(ranked, relevant, 4) == 1.0


def test_more_relevant_items_than_k():
  ranked, relevant = ["x", "a", "b"], {"a", "b", "c", "d", "e"}
  # Hits at 2 and 3: (1/2 + 2/3) / min(5, 3).
  assert rm.average_precision_at_k(ranked, relevant, 3) == pytest.approx(
      (1 / 2 + 2 / 3) / 3)
  assert rm.recall_at_k(ranked, relevant, 3) == pytest.approx(2 / 5)
  dcg = 1 / math.log2(3) + 1 / math.log2(4)
  idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
  assert rm.ndcg_at_k(ranked, relevant, 3) == pytest.approx(dcg / idcg)


def test_perfect_list_scores_one_when_r_exceeds_k():
  ranked, relevant = ["a", "b"], {"a", "b", "c"}
  assert rm.average_precision_at_k(ranked, relevant, 2) == 1.0
  assert rm.ndcg_at_k(ranked, relevant, 2) == pytest.approx(1.0)


def test_fewer_relevant_items_than_k():
  ranked, relevant = ["x", "y", "a", "z", "w"], {"a"}
  assert rm.average_precision_at_k(ranked, relevant, 5) == pytest.approx(1 / 3)
  assert rm.recall_at_k(ranked, relevant, 5) == 1.0
  assert rm.ndcg_at_k(ranked, relevant, 5) == pytest.approx(0.5)


def test_cut_off_ignores_later_hits():
  ranked, relevant = ["x", "y", "a"], {"a"}
  assert rm.average_precision_at_k(ranked, relevant, 2) == 0.0
  assert rm.recall_at_k(ranked, relevant, 2) == 0.0
  assert rm.ndcg_at_k(ranked, relevant, 2) == 0.0
  assert rm.hit_rate_at_k(ranked, relevant, 2) == 0.0


def test_duplicate_in_ranked_list_counts_once():
  ranked, relevant = ["a", "a", "b"], {"a", "b"}
  # The second "a" is no hit but takes position 2: (1/1 + 2/3) / 2.
  assert rm.average_precision_at_k(ranked, relevant, 3) == pytest.approx(5 / 6)
  assert rm.recall_at_k(ranked, relevant, 3) == 1.0
  dcg = 1 + 1 / math.log2(4)
  idcg = 1 + 1 / math.log2(3)
  assert rm.ndcg_at_k(ranked, relevant, 3) == pytest.approx(dcg / idcg)


def test_ties_go_to_earlier_item():
  ranked = rm.top_k_by_score(["a", "b", "c", "d"], [0.5, 0.9, 0.5, 0.9], 3)
  assert ranked == ["b", "d", "a"]
  # With R = {a}, the tie rule decides the hit position: 3, so AP = 1/3.
  assert rm.average_precision_at_k(ranked, {"a"}, 3) == pytest.approx(1 / 3)


def test_empty_relevant_set_rejected():
  with pytest.raises(ValueError, match="empty relevant set"):
    rm.average_precision_at_k(["a"], set(), 1)


def test_mean_skips_users_without_relevant_items():
  means = rm.mean_over_users(
      [["a", "b"], ["c", "d"], ["e"]], [{"a"}, {"d"}, set()], ks=[2])
  assert means["map@2"] == pytest.approx((1.0 + 0.5) / 2)
  assert means["recall@2"] == 1.0
  assert means["hit_rate@2"] == 1.0


def _run_combiner(examples, ks):
  computations = tfma_metrics.RankingMetrics(top_k_list=ks).computations()
  (computation,) = computations
  combiner = computation.combiner
  accumulator = combiner.create_accumulator()
  for ranked, relevant in examples:
    element = metric_types.StandardMetricInputs(
        features={"holdout_product_id": np.array(relevant, dtype=object)},
        predictions={"top_k_ids": np.array(ranked, dtype=object),
                     "top_k_scores": np.ones(len(ranked))})
    accumulator = combiner.add_input(accumulator, element)
  return {key.name: value
          for key, value in combiner.extract_output(accumulator).items()}


def test_tfma_combiner_matches_numpy_metrics():
  examples = [([b"a", b"b", b"c", b""], [b"c", b"z"]),
              ([b"x", b"y", b"z", b""], [b"y"])]
  output = _run_combiner(examples, [2, 3])
  expected = rm.mean_over_users([[b"a", b"b", b"c"], [b"x", b"y", b"z"]],
                                [{b"c", b"z"}, {b"y"}], [2, 3])
  for name, value in expected.items():
    assert output[name] == pytest.approx(value), name
  assert output["ranked_users"] == 2.0
  # Recall@3 of the first user counts the unknown item "z" in |R| = 2.
  assert output["recall@3"] == pytest.approx((1 / 2 + 1) / 2)


def test_tfma_combiner_outputs_no_metric_without_users():
  output = _run_combiner([], [10])
  assert "map@10" not in output
  assert output["ranked_users"] == 0.0

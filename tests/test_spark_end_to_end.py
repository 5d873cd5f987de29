"""End-to-end runs of the Spark job on real rating files.

The files are not part of the repository; the tests skip when they are
missing.
"""

import json

import pytest

from schemas import features
from tests import spark_fixtures as sf


def _require(path):
    if not path.exists():
        pytest.skip(f"real rating data not found at {path}")
    return str(path)


def _check_against_summary(output, summary, window):
    assert json.loads((output / "summary.json").read_text()) == summary
    assert (output / "_SUCCESS").exists()
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        examples = sf.read_examples(output, split)
        counts = summary["splits"][split]
        positives = sum(1 for e in examples if e[features.TARGET] == [1])
        assert len(examples) == counts["examples"], split
        assert positives == counts["positives"], split
        assert len(examples) - positives == counts["negatives"], split
        assert all(len(e[features.TOUCHED]) <= window for e in examples)
        assert all(e[features.PRODUCT_ID] != [""] for e in examples)
    holdout_examples = sf.read_examples(output, features.HOLDOUT_SPLIT)
    assert len(holdout_examples) == summary["holdout_users"]
    for example in holdout_examples:
        seen = set(example[features.SEEN])
        assert example[features.HOLDOUT_ITEMS]
        assert not seen & set(example[features.HOLDOUT_ITEMS])
        assert example[features.HISTORY_LENGTH][0] >= len(seen)
    return holdout_examples


def test_movielens_end_to_end(spark, tmp_path):
    path = _require(sf.MOVIELENS_RATINGS)
    output = tmp_path / "movielens"
    summary = sf.run(spark, path, output, layout="movielens", num_shards=3)

    assert summary["rows_read"] == 100_836
    assert summary["rows_rejected"] == 0
    assert summary["users"] == 610
    assert summary["items"] == 9_724
    assert len(sf.shard_files(output, "train")) == 3
    holdout_examples = _check_against_summary(output, summary, window=10)
    assert holdout_examples
    assert summary["cold_start_users"] > 0
    splits = summary["splits"]
    assert splits["train"]["negatives"] == 3 * splits["train"]["positives"]


def test_amazon_end_to_end_deterministic(spark, tmp_path):
    path = _require(sf.AMAZON_MAGAZINES)
    first = sf.run(spark, path, tmp_path / "first", layout="amazon")
    second = sf.run(spark, path, tmp_path / "second", layout="amazon")

    assert first["rows_read"] == 89_689
    assert first["users"] == 72_098
    assert first["items"] == 2_428
    _check_against_summary(tmp_path / "first", first, window=10)
    first_bytes = sf.shard_bytes(tmp_path / "first")
    assert len(first_bytes) == 6
    assert first_bytes == sf.shard_bytes(tmp_path / "second")
    for key in ("splits", "holdout_cut_timestamp", "eval_cut_timestamp",
                "duplicates_dropped", "catalog_items"):
        assert first[key] == second[key], key

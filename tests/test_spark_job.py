"""Tests of the Spark example job on small hand-written inputs."""

import json
import random

import numpy as np
import pytest

from tests import spark_fixtures as sf
from spark import holdout
from spark import ratings_reader as rr
from spark import output_files

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _by_user(examples):
    grouped = {}
    for example in examples:
        grouped.setdefault(example["user_id"][0], []).append(example)
    return grouped


def _history(example):
    return (example["touched_product_id"], example["liked_product_id"],
            example["disliked_product_id"])


# Cuts of 1.0 keep every event in train, so only windows are under test.
_ALL_TRAIN = dict(holdout_quantile=1.0, eval_quantile=1.0, negatives=0)


def test_windows_liked_disliked(spark, tmp_path):
    events = [
        ("u1", "i1", 5.0, 10), ("u1", "i2", 1.0, 20), ("u1", "i3", 3.0, 30),
        ("u1", "i4", 4.0, 40), ("u2", "i9", 2.0, 15), ("u2", "i1", 4.0, 25),
    ]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    summary = sf.run(spark, path, tmp_path / "out", window=2, **_ALL_TRAIN)

    train = _by_user(sf.read_examples(tmp_path / "out", "train"))
    assert [e["product_id"] for e in train["u1"]] == [
        ["i1"], ["i2"], ["i3"], ["i4"]]
    assert [_history(e) for e in train["u1"]] == [
        ([], [], []),
        (["i1"], ["i1"], []),
        (["i1", "i2"], ["i1"], ["i2"]),
        # Window 2: i1 has left; rating 3 (i3) is neither liked nor disliked.
        (["i2", "i3"], [], ["i2"]),
    ]
    assert [_history(e) for e in train["u2"]] == [
        ([], [], []), (["i9"], [], ["i9"])]
    assert all(e["target"] == [1] for e in train["u1"] + train["u2"])
    assert summary["splits"]["train"]["positives"] == 6
    assert summary["splits"]["eval"]["examples"] == 0
    assert summary["splits"]["holdout"]["examples"] == 0


def test_tie_break_independent_of_input_order(spark, tmp_path):
    # One day, five events: order must be (timestamp, item, rating).
    events = [
        ("u1", "b", 5.0, 86400), ("u1", "a", 2.0, 86400),
        ("u1", "a", 4.0, 86400), ("u1", "c", 1.0, 0), ("u1", "a", 1.0, 172800),
        ("u2", "z", 5.0, 86400), ("u2", "y", 5.0, 86400),
    ]
    outputs = []
    for attempt in range(3):
        shuffled = list(events)
        random.Random(attempt).shuffle(shuffled)
        path = sf.write_lines(tmp_path, sf.amazon_lines(shuffled),
                              name=f"ratings{attempt}.csv")
        output = tmp_path / f"out{attempt}"
        sf.run(spark, path, output, window=10, **_ALL_TRAIN)
        outputs.append(output)

    train = _by_user(sf.read_examples(outputs[0], "train"))
    assert [e["product_id"][0] for e in train["u1"]] == [
        "c", "a", "a", "b", "a"]
    assert train["u1"][3]["touched_product_id"] == ["c", "a", "a"]
    assert train["u1"][3]["liked_product_id"] == ["a"]
    assert train["u1"][3]["disliked_product_id"] == ["c", "a"]
    assert [e["product_id"][0] for e in train["u2"]] == ["y", "z"]
    assert sf.shard_bytes(outputs[0]) == sf.shard_bytes(outputs[1])
    assert sf.shard_bytes(outputs[0]) == sf.shard_bytes(outputs[2])


_HOLDOUT_EVENTS = [
    # Sorted timestamps: 1 2 3 4 5 6 7 9 9 10 10 10. Quantile 0.55 gives the
    # nearest rank ceil(6.6) = 7, so the cut is t=7.
    ("uA", "i1", 5.0, 1), ("uA", "i2", 2.0, 2), ("uA", "i3", 4.0, 9),
    ("uA", "i1", 5.0, 10), ("uA", "i5", 5.0, 10),
    ("uB", "i1", 4.0, 3), ("uB", "i2", 4.0, 4), ("uB", "i3", 4.0, 5),
    ("uC", "i4", 5.0, 10),  # Cold start: nothing before the cut.
    ("uD", "i2", 5.0, 6), ("uD", "i2", 5.0, 9),  # Only a seen item after.
    ("uE", "i3", 1.0, 7),
]


def test_global_holdout_cut(spark, tmp_path):
    path = sf.write_lines(tmp_path, sf.amazon_lines(_HOLDOUT_EVENTS))
    summary = sf.run(spark, path, tmp_path / "out", holdout_quantile=0.55,
                     eval_quantile=1.0, negatives=0)

    assert summary["holdout_cut_timestamp"] == 7
    assert summary["cold_start_users"] == 1
    assert summary["holdout_all_seen_users"] == 1
    assert summary["holdout_users"] == 1
    holdout_examples = sf.read_examples(tmp_path / "out", "holdout")
    assert holdout_examples == [{
        "user_id": ["uA"],
        "touched_product_id": ["i1", "i2"],
        "liked_product_id": ["i1"],
        "disliked_product_id": ["i2"],
        "seen_product_id": ["i1", "i2"],
        # First time rated decides the order; i1 was seen before the cut.
        "holdout_product_id": ["i3", "i5"],
        "history_length": [2],
    }]
    train = sf.read_examples(tmp_path / "out", "train")
    assert len(train) == 7
    assert summary["splits"]["train"]["positives"] == 7


def test_per_user_holdout(spark, tmp_path):
    events = [
        ("uA", "i1", 5.0, 1), ("uA", "i2", 1.0, 2), ("uA", "i4", 4.0, 3),
        ("uA", "i3", 4.0, 3), ("uA", "i4", 2.0, 9),
        ("uB", "i1", 5.0, 1), ("uB", "i2", 5.0, 2),
        ("uC", "i1", 5.0, 1), ("uC", "i2", 5.0, 2), ("uC", "i1", 3.0, 5),
    ]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    summary = sf.run(spark, path, tmp_path / "out", holdout="per_user",
                     per_user_cut=3, eval_quantile=1.0, negatives=0)

    assert summary["holdout_cut_timestamp"] is None
    assert summary["holdout_users"] == 1
    assert summary["holdout_all_seen_users"] == 1
    assert summary["cold_start_users"] == 0
    # uA: events 1-2 train, 3rd on held out; i3 sorts before i4 at t=3.
    assert sf.read_examples(tmp_path / "out", "holdout") == [{
        "user_id": ["uA"],
        "touched_product_id": ["i1", "i2"],
        "liked_product_id": ["i1"],
        "disliked_product_id": ["i2"],
        "seen_product_id": ["i1", "i2"],
        "holdout_product_id": ["i3", "i4"],
        "history_length": [2],
    }]
    train = _by_user(sf.read_examples(tmp_path / "out", "train"))
    assert [e["product_id"][0] for e in train["uA"]] == ["i1", "i2"]
    # uB has fewer than 3 events, so all of them stay in training.
    assert [e["product_id"][0] for e in train["uB"]] == ["i1", "i2"]
    assert [e["product_id"][0] for e in train["uC"]] == ["i1", "i2"]


def test_eval_split_by_time(spark, tmp_path):
    events = [("u1", f"i{t}", 4.0, t) for t in range(1, 11)] + [
        ("u2", "j1", 4.0, 2), ("u2", "j2", 2.0, 10)]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    # 12 events: holdout cut at rank ceil(10.8) = 11, timestamp 10, so no
    # event is held out; eval cut at rank ceil(0.75 * 12) = 9, timestamp 8.
    summary = sf.run(spark, path, tmp_path / "out", holdout_quantile=0.9,
                     eval_quantile=0.75, negatives=0, window=3)

    assert summary["holdout_cut_timestamp"] == 10
    assert summary["eval_cut_timestamp"] == 8
    evaluation = _by_user(sf.read_examples(tmp_path / "out", "eval"))
    assert [e["product_id"][0] for e in evaluation["u1"]] == ["i9", "i10"]
    # Eval history may use earlier train-split events.
    assert evaluation["u1"][0]["touched_product_id"] == ["i6", "i7", "i8"]
    assert [e["product_id"][0] for e in evaluation["u2"]] == ["j2"]
    assert evaluation["u2"][0]["touched_product_id"] == ["j1"]
    train = sf.read_examples(tmp_path / "out", "train")
    assert len(train) == 9
    assert summary["splits"]["eval"]["positives"] == 3


def test_eval_split_by_user(spark, tmp_path):
    events = [(f"u{u}", f"i{t % 7}", 4.0, 100 * u + t)
              for u in range(40) for t in range(3)]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    summary = sf.run(spark, path, tmp_path / "out", holdout_quantile=1.0,
                     eval_split="user", eval_user_fraction=0.5, negatives=0)

    train = _by_user(sf.read_examples(tmp_path / "out", "train"))
    evaluation = _by_user(sf.read_examples(tmp_path / "out", "eval"))
    assert not set(train) & set(evaluation)
    assert len(train) + len(evaluation) == 40
    assert 8 <= len(evaluation) <= 32
    assert all(len(e) == 3 for e in evaluation.values())
    assert summary["eval_cut_timestamp"] is None
    assert summary["splits"]["eval"]["users"] == len(evaluation)

    same = sf.run(spark, path, tmp_path / "again", holdout_quantile=1.0,
                  eval_split="user", eval_user_fraction=0.5, negatives=0)
    assert same["splits"] == summary["splits"]
    other = _by_user(sf.read_examples(
        tmp_path / "again", "eval"))
    assert set(other) == set(evaluation)


def test_negatives_exclude_user_items(spark, tmp_path):
    rng = np.random.default_rng(5)
    events = []
    for u in range(30):
        for t in rng.choice(60, size=int(rng.integers(1, 12)), replace=False):
            events.append((f"u{u}", f"i{int(rng.integers(0, 25))}",
                           float(rng.integers(1, 6)), int(t)))
    # A user who rated the whole train catalog gets no negatives.
    events += [("uall", f"i{i}", 5.0, 0) for i in range(25)]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    summary = sf.run(spark, path, tmp_path / "out", holdout_quantile=0.9,
                     eval_quantile=0.8, negatives=3, seed=11)

    output = tmp_path / "out"
    train = sf.read_examples(output, "train")
    evaluation = sf.read_examples(output, "eval")
    catalog = {e["product_id"][0] for e in train if e["target"] == [1]}
    assert len(catalog) == summary["catalog_items"]
    train_items, training_period_items = {}, {}
    for e in train:
        if e["target"] == [1]:
            train_items.setdefault(e["user_id"][0], set()).add(
                e["product_id"][0])
    for e in train + evaluation:
        if e["target"] == [1]:
            training_period_items.setdefault(e["user_id"][0], set()).add(
                e["product_id"][0])

    train_negatives = [e for e in train if e["target"] == [0]]
    eval_negatives = [e for e in evaluation if e["target"] == [0]]
    assert train_negatives and eval_negatives
    for e in train_negatives:
        assert e["product_id"][0] in catalog
        assert e["product_id"][0] not in train_items[e["user_id"][0]]
        assert e["product_id"][0] != ""
    for e in eval_negatives:
        assert e["product_id"][0] in catalog
        assert e["product_id"][0] not in training_period_items[
            e["user_id"][0]]
    assert not [e for e in train_negatives if e["user_id"] == ["uall"]]
    assert summary["splits"]["train"]["users_without_negatives"] >= 1
    split = summary["splits"]["train"]
    assert split["negatives"] == len(train_negatives)
    assert split["examples"] == len(train)


def test_negatives_share_positive_history(spark, tmp_path):
    events = [("u1", "a", 5.0, 1), ("u1", "b", 1.0, 2), ("u2", "c", 4.0, 1),
              ("u2", "d", 4.0, 3)]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    sf.run(spark, path, tmp_path / "out", holdout_quantile=1.0,
           eval_quantile=1.0, negatives=2)
    train = _by_user(sf.read_examples(tmp_path / "out", "train"))
    u1 = train["u1"]
    # Positive a, its 2 negatives, positive b, its 2 negatives.
    assert [e["target"][0] for e in u1] == [1, 0, 0, 1, 0, 0]
    assert all(_history(e) == _history(u1[3]) for e in u1[3:])
    assert {e["product_id"][0] for e in u1 if e["target"] == [0]} <= {"c", "d"}


def test_bad_rows_counted_and_kept(spark, tmp_path):
    lines = ["userId,movieId,rating,timestamp"] + [
        f"u{i},m{i % 5},{0.5 + (i % 10) * 0.5},{1000 + i}" for i in range(40)]
    bad = {
        "u1,m1,4.0": rr.WRONG_FIELD_COUNT,
        "u1,m1,4.0,5,extra": rr.WRONG_FIELD_COUNT,
        ",m1,4.0,5": rr.EMPTY_ID,
        "u1, ,4.0,5": rr.EMPTY_ID,
        "u1,m1,good,5": rr.NON_NUMERIC_RATING,
        "u1,m1,NaN,5": rr.NON_NUMERIC_RATING,
        "u1,m1,4.0,yesterday": rr.NON_NUMERIC_TIMESTAMP,
        "u1,m1,4.0,12.5": rr.NON_NUMERIC_TIMESTAMP,
        "u1,m1,5.5,5": rr.RATING_OUT_OF_RANGE,
        "u1,m1,0.0,5": rr.RATING_OUT_OF_RANGE,
    }
    duplicates = [lines[1], lines[2]]
    path = sf.write_lines(tmp_path, lines + list(bad) + duplicates)
    summary = sf.run(spark, path, tmp_path / "out", layout="movielens",
                     max_reject_fraction=0.3, negatives=0)

    assert summary["rows_read"] == 40 + len(bad) + 2
    assert summary["rows_rejected"] == len(bad)
    for kind in rr.REJECT_KINDS:
        assert summary["rejected_by_kind"][kind] == 2, kind
    assert summary["duplicates_dropped"] == 2
    assert summary["events"] == 40

    rejects = []
    for part in (tmp_path / "out" / "rejects").glob("part-*.json"):
        rejects += [json.loads(line) for line in part.read_text().splitlines()]
    assert {r["raw_line"]: r["reason"] for r in rejects} == bad
    assert all(r["source_file"].endswith("ratings.csv") for r in rejects)


def test_reject_limit_fails_job(spark, tmp_path):
    lines = sf.amazon_lines([("u1", "a", 5.0, 1), ("u1", "b", 4.0, 2)]) + [
        "a,u2,9.0,3"]
    path = sf.write_lines(tmp_path, lines)
    with pytest.raises(rr.RejectedRowsError) as raised:
        sf.run(spark, path, tmp_path / "out")
    message = str(raised.value)
    assert path in message
    assert "33.33%" in message
    assert "1.00%" in message
    assert "--max-reject-fraction" in message
    assert not (tmp_path / "out").exists()


def test_missing_input_clear_error(spark, tmp_path):
    missing = str(tmp_path / "nowhere.csv")
    with pytest.raises(rr.InputDataError, match="not found: .*nowhere.csv"):
        sf.run(spark, missing, tmp_path / "out")


def test_empty_input_clear_error(spark, tmp_path):
    empty = sf.write_lines(tmp_path, [], name="empty.csv")
    with pytest.raises(rr.InputDataError, match="empty: .*empty.csv"):
        sf.run(spark, empty, tmp_path / "out")


def test_header_only_input_clear_error(spark, tmp_path):
    path = sf.write_lines(tmp_path, ["userId,movieId,rating,timestamp"])
    with pytest.raises(rr.InputDataError, match="no rating rows"):
        sf.run(spark, path, tmp_path / "out", layout="movielens")


def test_existing_output_needs_overwrite(spark, tmp_path):
    path = sf.write_lines(tmp_path, sf.amazon_lines([("u1", "a", 5.0, 1)]))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(output_files.OutputExistsError, match="--overwrite"):
        sf.run(spark, path, tmp_path / "out")
    sf.run(spark, path, tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "old.txt").exists()
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert len(sf.shard_files(tmp_path / "out", "train")) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unsupported_output_scheme(spark, tmp_path):
    path = sf.write_lines(tmp_path, sf.amazon_lines([("u1", "a", 5.0, 1)]))
    with pytest.raises(NotImplementedError, match="only local paths and gs://"):
        sf.run(spark, path, "s3://bucket/examples")


@pytest.mark.parametrize("quantile, expected", [
    (0.1, 1), (0.5, 5), (0.9, 9), (1.0, 10), (0.0001, 1)])
def test_nearest_rank_cut(quantile, expected):
    timestamps = np.arange(1, 11)
    counts = np.ones(10, dtype=np.int64)
    assert holdout.nearest_rank_cut(timestamps, counts, quantile) == expected


def test_nearest_rank_cut_with_ties():
    # Ten events: 1 at t=5, 8 at t=6, 1 at t=9; 90% lands inside the tie.
    cut = holdout.nearest_rank_cut(np.array([5, 6, 9]), np.array([1, 8, 1]),
                                   0.9)
    assert cut == 6


def test_job_keeps_callers_session(spark, tmp_path):
    # A session that the caller started must survive a run that was not
    # handed it, as when the pipeline command runs inside a Spark program.
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("".join(
        f"i{i % 5},u{i % 3},{1 + i % 5}.0,{1_400_000_000 + 86_400 * i}\n"
        for i in range(40)))
    from spark import job as spark_job
    from spark.config import ExampleJobConfig
    spark_job.run_job(ExampleJobConfig(
        input_path=str(ratings), output_path=str(tmp_path / "out"),
        layout="amazon", num_shards=1))
    assert spark.sparkContext._jsc is not None
    assert spark.range(3).count() == 3

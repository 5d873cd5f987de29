"""Tests of the Spark example job with `gs://` input and output.

Spark runs in local mode and Cloud Storage is fake-gcs-server on a loopback
port (`tests/gcs_emulator.py`). Local Spark has no `gs://` file system, so
these tests cover the path that copies `gs://` input to local disk. Reading
through Dataproc's Cloud Storage connector is not tested.
"""

import json
import os
import uuid

import fsspec
import pytest

from cloud import paths
from cloud import storage as gcs
from spark import output_files
from spark import ratings_reader as rr
from tests import spark_fixtures as sf
# The fixtures are used by name as test arguments.
from tests.gcs_emulator import emulator_env  # pylint: disable=unused-import
from tests.gcs_emulator import emulator_url  # pylint: disable=unused-import

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SPLITS = ("train", "eval", "holdout")

# (user, item, rating, timestamp). Three users with histories, one user whose
# only event falls after the holdout cut.
EVENTS = [
    ("u1", "i1", 5.0, 100), ("u1", "i2", 4.0, 200), ("u1", "i3", 1.0, 300),
    ("u1", "i4", 5.0, 900),
    ("u2", "i2", 2.0, 150), ("u2", "i3", 5.0, 250), ("u2", "i5", 4.0, 350),
    ("u2", "i1", 3.0, 950),
    ("u3", "i1", 4.0, 120), ("u3", "i4", 4.0, 220), ("u3", "i5", 2.0, 320),
    ("u4", "i2", 5.0, 990),
]
# Settings that put events after timestamp 800 in the holdout split.
SETTINGS = dict(holdout_quantile=0.7, eval_quantile=0.8, negatives=2,
                num_shards=2)


@pytest.fixture
def bucket(emulator_env):
    """Create a bucket with a unique name, so tests share no objects."""
    name = f"spark-{uuid.uuid4().hex[:12]}"
    gcs.make_client().create_bucket(name)
    return name


@pytest.fixture
def filesystem(emulator_env):
    return fsspec.filesystem("gs", use_listings_cache=False,
                             skip_instance_cache=True,
                             **output_files.storage_options("gs://b/x"))


def _upload_lines(tmp_path, lines, uri):
    local = sf.write_lines(tmp_path, lines, name=f"{uuid.uuid4().hex}.csv")
    return gcs.upload_file(local, uri)


def _objects(filesystem, uri):
    """Return the object names below the prefix `uri`, relative to it."""
    prefix = paths.parse_gcs_uri(uri).as_prefix()
    start = len(prefix.bucket) + 1 + len(prefix.name)
    return sorted(name[start:] for name in filesystem.find(
        f"{prefix.bucket}/{prefix.name}"))


def _download_output(filesystem, uri, local_dir):
    """Copy every object below `uri` into `local_dir`, keeping names."""
    for name in _objects(filesystem, uri):
        local = local_dir / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(filesystem.cat_file(f"{uri}/{name}"))
    return local_dir


def test_gcs_input_and_output_round_trip(spark, bucket, filesystem,
                                         tmp_path):
    input_uri = _upload_lines(tmp_path, sf.amazon_lines(EVENTS),
                              f"gs://{bucket}/data/ratings.csv")
    output_uri = f"gs://{bucket}/out"

    summary = sf.run(spark, input_uri, output_uri, **SETTINGS)

    names = _objects(filesystem, output_uri)
    assert "_SUCCESS" in names
    assert "summary.json" in names
    for split in SPLITS:
        assert f"{split}/part-00000.tfrecord.gz" in names
        assert f"{split}/part-00001.tfrecord.gz" in names
    assert len(names) == 2 + 3 * 2, names
    assert summary["input_path"] == input_uri
    assert summary["rows_read"] == len(EVENTS)

    written = json.loads(filesystem.cat_file(f"{output_uri}/summary.json"))
    assert written["splits"] == summary["splits"]

    local = _download_output(filesystem, output_uri, tmp_path / "downloaded")
    for split in ("train", "eval"):
        examples = sf.read_examples(local, split)
        counts = written["splits"][split]
        assert len(examples) == counts["examples"], split
        assert sum(e["target"] == [1] for e in examples) == counts["positives"]
        assert sum(e["target"] == [0] for e in examples) == counts["negatives"]
    holdout = sf.read_examples(local, "holdout")
    assert len(holdout) == written["splits"]["holdout"]["examples"]
    assert written["splits"]["train"]["positives"] > 0
    assert written["splits"]["eval"]["positives"] > 0
    assert len(holdout) > 0


def test_gcs_shards_match_local_run(spark, bucket, filesystem, tmp_path):
    lines = sf.amazon_lines(EVENTS)
    input_uri = _upload_lines(tmp_path, lines,
                              f"gs://{bucket}/data/ratings.csv")
    local_input = sf.write_lines(tmp_path, lines)

    sf.run(spark, input_uri, f"gs://{bucket}/out", **SETTINGS)
    sf.run(spark, local_input, tmp_path / "local_out", **SETTINGS)

    downloaded = _download_output(filesystem, f"gs://{bucket}/out",
                                  tmp_path / "downloaded")
    assert sf.shard_bytes(downloaded) == sf.shard_bytes(tmp_path / "local_out")


def test_gcs_output_exists_needs_overwrite(spark, bucket, filesystem,
                                           tmp_path):
    input_uri = _upload_lines(tmp_path, sf.amazon_lines(EVENTS),
                              f"gs://{bucket}/data/ratings.csv")
    output_uri = f"gs://{bucket}/out"
    sf.run(spark, input_uri, output_uri, **SETTINGS)
    # A shard that a run with more shards would have left behind.
    stale = f"{output_uri}/train/part-00007.tfrecord.gz"
    filesystem.pipe_file(stale, b"stale")

    with pytest.raises(output_files.OutputExistsError,
                       match=r"finished output \(it has _SUCCESS\)"):
        sf.run(spark, input_uri, output_uri, **SETTINGS)
    assert filesystem.exists(stale)

    sf.run(spark, input_uri, output_uri, overwrite=True, **SETTINGS)
    assert not filesystem.exists(stale)
    assert filesystem.exists(f"{output_uri}/_SUCCESS")
    assert len(_objects(filesystem, f"{output_uri}/train")) == 2


def test_gcs_unfinished_output_needs_overwrite(spark, bucket, filesystem,
                                               tmp_path):
    input_uri = _upload_lines(tmp_path, sf.amazon_lines(EVENTS),
                              f"gs://{bucket}/data/ratings.csv")
    filesystem.pipe_file(f"gs://{bucket}/out/train/part-00000.tfrecord.gz",
                         b"partial")

    with pytest.raises(output_files.OutputExistsError,
                       match="no _SUCCESS.*--overwrite"):
        sf.run(spark, input_uri, f"gs://{bucket}/out", **SETTINGS)


def test_gcs_missing_input_object(spark, bucket):
    missing = f"gs://{bucket}/data/missing.csv"
    with pytest.raises(rr.InputDataError,
                       match=f"not found: '{missing}'. Pass an existing"):
        sf.run(spark, missing, f"gs://{bucket}/out")


def test_gcs_missing_input_bucket(spark, bucket):
    missing = "gs://no-such-bucket-7f3a/ratings.csv"
    with pytest.raises(rr.InputDataError,
                       match="bucket gs://no-such-bucket-7f3a does not exist"):
        sf.run(spark, missing, f"gs://{bucket}/out")


def test_gcs_empty_input_object(spark, bucket, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    uri = gcs.upload_file(empty, f"gs://{bucket}/data/empty.csv")
    with pytest.raises(rr.InputDataError, match="is empty"):
        sf.run(spark, uri, f"gs://{bucket}/out")


def test_gcs_input_prefix_skips_hidden(spark, bucket, tmp_path):
    half = len(EVENTS) // 2
    _upload_lines(tmp_path, sf.amazon_lines(EVENTS[:half]),
                  f"gs://{bucket}/data/a.csv")
    _upload_lines(tmp_path, sf.amazon_lines(EVENTS[half:]),
                  f"gs://{bucket}/data/b.csv")
    _upload_lines(tmp_path, ["not,a,rating"], f"gs://{bucket}/data/_SUCCESS")

    summary = sf.run(spark, f"gs://{bucket}/data/", tmp_path / "out",
                     **SETTINGS)

    assert summary["rows_read"] == len(EVENTS)
    assert summary["rows_rejected"] == 0


def test_gcs_rejects_name_source_object(spark, bucket, filesystem, tmp_path):
    lines = sf.amazon_lines(EVENTS) + ["i9,u9,not-a-number,100", "broken"]
    input_uri = _upload_lines(tmp_path, lines,
                              f"gs://{bucket}/data/ratings.csv")
    output_uri = f"gs://{bucket}/out"

    summary = sf.run(spark, input_uri, output_uri, max_reject_fraction=0.5,
                     **SETTINGS)

    assert summary["rows_rejected"] == 2
    text = filesystem.cat_file(
        f"{output_uri}/rejects/part-00000.json").decode("utf-8")
    rejects = sorted((json.loads(line) for line in text.splitlines()),
                     key=lambda record: record["raw_line"])
    assert rejects == [
        {"source_file": input_uri, "reason": rr.WRONG_FIELD_COUNT,
         "raw_line": "broken"},
        {"source_file": input_uri, "reason": rr.NON_NUMERIC_RATING,
         "raw_line": "i9,u9,not-a-number,100"},
    ]
    assert filesystem.exists(f"{output_uri}/_SUCCESS")


def test_gcs_too_many_rejects_keeps_them(spark, bucket, filesystem,
                                         tmp_path):
    lines = sf.amazon_lines(EVENTS) + ["broken"]
    input_uri = _upload_lines(tmp_path, lines,
                              f"gs://{bucket}/data/ratings.csv")
    output_uri = f"gs://{bucket}/out"

    with pytest.raises(rr.RejectedRowsError,
                       match=f"{output_uri}/rejects"):
        sf.run(spark, input_uri, output_uri, max_reject_fraction=0.0,
               **SETTINGS)

    assert _objects(filesystem, output_uri) == ["rejects/part-00000.json"]


def test_gcs_failed_run_deletes_partial_output(spark, bucket, filesystem,
                                               tmp_path):
    # Every row is invalid, so the job fails after writing the rejects.
    input_uri = _upload_lines(tmp_path, ["broken", "also,broken"],
                              f"gs://{bucket}/data/ratings.csv")
    output_uri = f"gs://{bucket}/out"

    with pytest.raises(rr.InputDataError, match="no valid rating rows"):
        sf.run(spark, input_uri, output_uri, max_reject_fraction=1.0)

    assert _objects(filesystem, output_uri) == []


def test_gcs_output_bucket_missing(spark, bucket, tmp_path):
    path = sf.write_lines(tmp_path, sf.amazon_lines(EVENTS))
    with pytest.raises(FileNotFoundError,
                       match="Bucket gs://no-such-bucket-7f3a .*not found"):
        sf.run(spark, path, "gs://no-such-bucket-7f3a/out")


def test_gcs_output_whole_bucket_rejected(spark, bucket, tmp_path):
    path = sf.write_lines(tmp_path, sf.amazon_lines(EVENTS))
    with pytest.raises(ValueError, match="names a whole bucket"):
        sf.run(spark, path, f"gs://{bucket}/")


def test_local_session_has_no_gcs_file_system(spark):
    assert not rr.session_reads_gcs(spark)


def test_executors_write_without_emulator_variable(spark, bucket, filesystem,
                                                   tmp_path):
    # The shared session started before the fixtures set the variable, so
    # its Python workers lack it and must use the options that the driver
    # passes to them.
    worker_values = spark.sparkContext.parallelize([0], 1).map(
        lambda _: os.environ.get(paths.EMULATOR_HOST_ENV)).collect()
    if worker_values != [None]:
        pytest.skip("The Spark session started with STORAGE_EMULATOR_HOST "
                    "set, so its workers inherited it.")
    input_uri = _upload_lines(tmp_path, sf.amazon_lines(EVENTS),
                              f"gs://{bucket}/data/ratings.csv")

    sf.run(spark, input_uri, f"gs://{bucket}/out", **SETTINGS)

    assert filesystem.exists(f"gs://{bucket}/out/train/part-00000.tfrecord.gz")

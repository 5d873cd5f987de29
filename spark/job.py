"""Driver side of the example job: read, validate, split, sample and write.

Output layout under `config.output_path`:

    train/part-NNNNN.tfrecord.gz    positives and sampled negatives
    eval/part-NNNNN.tfrecord.gz     positives and sampled negatives
    holdout/part-NNNNN.tfrecord.gz  one example per evaluated user
    rejects/                        invalid input lines as JSON lines, with
                                    source_file, reason and raw_line (only
                                    when there are any)
    summary.json                    counts, cut timestamps and the config
    _SUCCESS                        written last

`config.output_path` is a local directory or a `gs://` prefix, and
`config.input_path` a local path or a `gs://` URI. A local output is written
to a hidden sibling directory first and renamed into place at the end, so
readers never see a partial output. Cloud Storage has no such rename, so
there the job writes below the final prefix and readers must wait for
`_SUCCESS` (see `output_files` for the protocol). The executors write the
shards; only counters, the timestamp histogram and the item catalog reach
the driver.
"""

import dataclasses
import json
import logging
import os
import sys
import time
from typing import Dict, Iterator, Optional

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from schemas import features
from spark import example_builder
from spark import holdout
from spark import output_files
from spark import ratings_reader as rr
from spark import tfrecord_writer as tfw
from spark import windows
from spark.config import ExampleJobConfig

SUMMARY_FILE = "summary.json"
REJECTS_DIR = "rejects"

_LOG = logging.getLogger(__name__)


def create_session(config: ExampleJobConfig) -> SparkSession:
    """Start or reuse a SparkSession for the job.

    Under `spark-submit` the session settings come from spark-submit, so
    `config.master` and `config.driver_memory` only apply when this process
    starts the JVM itself. Local masters bind to the loopback interface and
    run without the web UI.
    """
    builder = SparkSession.builder.appName("make_examples")
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not under_spark_submit:
        builder = (builder.master(config.master)
                   .config("spark.driver.memory", config.driver_memory))
        # Python workers must import the same `spark` and `schemas` packages
        # and run the same interpreter as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        _add_repo_root_to_pythonpath()
        if config.master.startswith("local"):
            # Keeps the block manager and shuffle service on the loopback too.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = (builder
                       .config("spark.driver.host", "127.0.0.1")
                       .config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.ui.enabled", "false")
                       .config("spark.ui.showConsoleProgress", "false"))
    session = builder.getOrCreate()
    if not under_spark_submit and config.master.startswith("local"):
        # Spark's default of 200 shuffle partitions is sized for clusters. In
        # local mode each extra task only adds scheduling overhead, which
        # doubled the run time on a 100,000-row input.
        parallelism = session.sparkContext.defaultParallelism
        session.conf.set("spark.sql.shuffle.partitions",
                         str(max(config.num_shards, 4 * parallelism)))
    return session


def _add_repo_root_to_pythonpath() -> None:
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if repo_root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [repo_root] + [path for path in paths if path])


def run_job(config: ExampleJobConfig,
            spark: Optional[SparkSession] = None) -> Dict[str, object]:
    """Run the example job and return the summary that it writes.

    Args:
      config: Job settings.
      spark: Session to use. When None the job creates one with
        `create_session` and stops it at the end. A given session must be
        able to import the `spark` and `schemas` packages on its executors.

    Returns:
      The contents of `summary.json`.

    Raises:
      InputDataError: The input is missing, empty or has no valid rows.
      RejectedRowsError: More input rows are invalid than
        `config.max_reject_fraction` allows. The rejected rows are kept in
        the staging directory (local) or below the output prefix (`gs://`)
        named in the message.
      OutputExistsError: The output exists and `config.overwrite` is False.
      FileNotFoundError: The bucket of a `gs://` output does not exist.
      NotImplementedError: A path has a scheme other than `file://` and
        `gs://`.
    """
    started = time.monotonic()
    output_path = output_files.resolve_output_path(config.output_path)
    output_files.check_output_free(output_path, config.overwrite)
    rr.check_input_path(config.input_path)
    rr.check_layout(config.input_path, config.layout)

    # `getOrCreate` returns a session that the caller already runs, and
    # stopping that one would break the caller, so only a session started
    # here is stopped here.
    own_session = spark is None and SparkSession.getActiveSession() is None
    if spark is None:
        spark = create_session(config)
    # A staging directory for local output, the output prefix for gs://.
    root = output_files.start_output(output_path, config.overwrite)
    keep_written = False
    committed = False
    try:
        with rr.spark_input(spark, config.input_path) as source:
            summary = _build_outputs(spark, config, source, root)
        summary["elapsed_seconds"] = round(time.monotonic() - started, 1)
        output_files.write_text(
            output_files.join(root, SUMMARY_FILE),
            json.dumps(summary, indent=2, sort_keys=True) + "\n")
        output_files.commit_output(root, output_path, config.overwrite)
        committed = True
    except rr.RejectedRowsError:
        keep_written = True
        raise
    finally:
        if not committed and not keep_written:
            _discard(root)
        if own_session:
            spark.stop()
    _LOG.info("Example job wrote %s in %.1f s.", output_path,
              summary["elapsed_seconds"])
    return summary


def _discard(root: str) -> None:
    """Delete a failed run's output; log, not raise, so the cause surfaces."""
    try:
        output_files.remove_dir(root)
    except Exception as error:  # pylint: disable=broad-except
        # gcsfs raises its own HTTP errors. None of them may hide the error
        # that failed the run, which is re-raised after this.
        _LOG.error("Failed to delete the partial output %s of the failed run: "
                   "%s. Delete it by hand or run with --overwrite.", root,
                   error)


def _count_lines(classified: DataFrame) -> Dict[Optional[str], int]:
    rows = classified.groupBy(rr.REASON).count().collect()
    return {row[rr.REASON]: row["count"] for row in rows}


def _build_outputs(spark: SparkSession, config: ExampleJobConfig,
                   source: rr.SparkInput, root: str) -> Dict[str, object]:
    layout = rr.LAYOUTS[config.layout]
    classified = rr.classify_lines(spark, source, layout)

    step = time.monotonic()
    line_counts = _count_lines(classified)
    rows_read = sum(line_counts.values())
    rejected_by_kind = {kind: line_counts.get(kind, 0)
                        for kind in rr.REJECT_KINDS}
    rejected = sum(rejected_by_kind.values())
    rejects_path = output_files.join(root, REJECTS_DIR)
    if rejected:
        _write_rejects(
            classified.where(F.col(rr.REASON).isNotNull())
            .select(rr.SOURCE_FILE, rr.REASON, rr.RAW_LINE),
            rejects_path)
    _LOG.info("Read %d rows, rejected %d (%.1f s).", rows_read, rejected,
              time.monotonic() - step)
    rr.check_reject_share(config.input_path, rows_read, rejected,
                          config.max_reject_fraction, rejects_path)

    valid = classified.where(F.col(rr.REASON).isNull()).select(
        rr.USER, rr.ITEM, rr.RATING, rr.TIMESTAMP)
    # Exact duplicates are one event logged twice; a repeated (user, item)
    # pair with another timestamp or rating is kept as a separate event.
    ratings = valid.dropDuplicates().persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return _write_examples(spark, config, root, ratings, {
            "rows_read": rows_read,
            "rows_rejected": rejected,
            "rejected_by_kind": rejected_by_kind,
        })
    finally:
        ratings.unpersist()


def _write_rejects(rejects: DataFrame, rejects_path: str) -> None:
    """Write rejected rows as JSON lines into one file below `rejects_path`.

    Spark writes local output itself. For `gs://` one task writes
    `part-00000.json` through `output_files`, because Spark in local mode has
    no `gs://` file system. Both write the same keys, in the same order, and
    leave out none, because no column of a rejected row is null.
    """
    if not output_files.is_gcs(rejects_path):
        rejects.coalesce(1).write.json(rejects_path)
        return
    path = output_files.join(rejects_path, "part-00000.json")
    options = output_files.storage_options(path)
    columns = list(rejects.columns)

    def write(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        stream, temporary = output_files.open_for_write(path)
        lines = 0
        try:
            with stream:
                for batch in batches:
                    for row in batch[columns].itertuples(index=False):
                        record = dict(zip(columns, row))
                        stream.write(json.dumps(
                            record, ensure_ascii=False,
                            separators=(",", ":")).encode("utf-8") + b"\n")
                        lines += 1
            output_files.finish_write(temporary, path, options)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        yield pd.DataFrame({"lines": [lines]})

    rejects.coalesce(1).mapInPandas(write, "lines long").collect()


def _write_examples(spark: SparkSession, config: ExampleJobConfig,
                    root: str, ratings: DataFrame,
                    read_counts: Dict[str, object]) -> Dict[str, object]:
    step = time.monotonic()
    # The first action on `ratings` also fills its cache.
    events = ratings.count()
    valid_rows = read_counts["rows_read"] - read_counts["rows_rejected"]
    if events == 0:
        raise rr.InputDataError(
            f"Input {config.input_path!r} has no valid rating rows.")
    items = ratings.select(rr.ITEM).distinct().count()
    _LOG.info("Dropped duplicates: %d events, %d items (%.1f s).", events,
              items, time.monotonic() - step)

    step = time.monotonic()
    with_split, cuts = holdout.assign_splits(ratings, config)
    if config.holdout == "per_user":
        # The per-user ranks come from a window; compute them once.
        with_split = with_split.persist(StorageLevel.MEMORY_AND_DISK)

    catalog = [row[0] for row in (
        with_split.where(F.col(holdout.SPLIT) == holdout.TRAIN_CODE)
        .select(rr.ITEM).distinct().orderBy(rr.ITEM).collect())]
    if not catalog and config.negatives:
        _LOG.warning("The train split is empty, so no negatives can be "
                     "sampled.")
    catalog_broadcast = spark.sparkContext.broadcast(catalog)
    _LOG.info("Cut at %s (holdout) and %s (eval); catalog of %d items "
              "(%.1f s).", cuts.holdout_cut, cuts.eval_cut, len(catalog),
              time.monotonic() - step)

    settings = example_builder.PartitionSettings(
        output_root=root, window=config.window,
        negatives=config.negatives, seed=config.seed,
        catalog=catalog_broadcast,
        storage_options=output_files.storage_options(root))
    step = time.monotonic()
    stats_rows = (windows.shard_and_sort(with_split, config.num_shards)
                  .mapInPandas(example_builder.partition_function(settings),
                               example_builder.STATS_SCHEMA)
                  .collect())
    _LOG.info("Wrote %d shards per split (%.1f s).", config.num_shards,
              time.monotonic() - step)
    catalog_broadcast.unpersist()
    if config.holdout == "per_user":
        with_split.unpersist()

    _fill_missing_shards(root, config.num_shards)
    stats = {name: sum(row[name] for row in stats_rows)
             for name in example_builder.STAT_NAMES}
    counts = {"events": events, "users": stats["users"], "items": items}
    return _summary(config, read_counts, valid_rows, counts, cuts,
                    len(catalog), stats)


def _fill_missing_shards(root: str, num_shards: int) -> None:
    """Write empty shards for partitions that Spark ran no task for.

    Every split then has exactly `num_shards` files, which keeps the layout
    the same whatever the data.
    """
    for split in example_builder.SPLIT_NAMES.values():
        written = output_files.list_file_names(
            output_files.join(root, split))
        for shard in range(num_shards):
            path = example_builder.shard_path(root, split, shard)
            if os.path.basename(path) in written:
                continue
            stream, temporary = output_files.open_for_write(path)
            with stream:
                tfw.GzipTFRecordWriter(stream).close()
            output_files.finish_write(temporary, path,
                                      output_files.storage_options(path))


def _summary(config, read_counts, valid_rows, counts, cuts, catalog_items,
             stats) -> Dict[str, object]:
    splits = {}
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        positives = stats[f"{split}_positives"]
        negatives = stats[f"{split}_negatives"]
        splits[split] = {
            "examples": positives + negatives,
            "positives": positives,
            "negatives": negatives,
            "users": stats[f"{split}_users"],
            "users_without_negatives": stats[f"{split}_users_without_negatives"],
        }
    splits[features.HOLDOUT_SPLIT] = {
        "examples": stats["holdout_examples"],
        "users": stats["holdout_examples"],
    }
    return {
        "input_path": config.input_path,
        "output_path": config.output_path,
        "layout": config.layout,
        **read_counts,
        "duplicates_dropped": valid_rows - counts["events"],
        "events": counts["events"],
        "users": counts["users"],
        "items": counts["items"],
        "catalog_items": catalog_items,
        "holdout_cut_timestamp": cuts.holdout_cut,
        "eval_cut_timestamp": cuts.eval_cut,
        "splits": splits,
        "holdout_users": stats["holdout_examples"],
        "cold_start_users": stats["cold_start_users"],
        "holdout_all_seen_users": stats["holdout_all_seen_users"],
        "num_shards": config.num_shards,
        "seed": config.seed,
        "config": dataclasses.asdict(config),
    }


def format_summary(summary: Dict[str, object]) -> str:
    """Return a few human-readable lines about one run."""
    splits = summary["splits"]
    rejected = ", ".join(f"{kind} {count}" for kind, count
                         in summary["rejected_by_kind"].items() if count)
    lines = [
        f"input {summary['input_path']}: {summary['rows_read']} rows, "
        f"{summary['rows_rejected']} rejected"
        + (f" ({rejected})" if rejected else "")
        + f", {summary['duplicates_dropped']} duplicates dropped",
        f"{summary['events']} events, {summary['users']} users, "
        f"{summary['items']} items, catalog {summary['catalog_items']} items",
        f"cuts: holdout {summary['holdout_cut_timestamp']}, "
        f"eval {summary['eval_cut_timestamp']}",
    ]
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        counts = splits[split]
        lines.append(
            f"{split}: {counts['examples']} examples ({counts['positives']} "
            f"positives, {counts['negatives']} negatives) from "
            f"{counts['users']} users")
    lines.append(
        f"holdout: {summary['holdout_users']} users, "
        f"{summary['cold_start_users']} cold-start users left out, "
        f"{summary['holdout_all_seen_users']} users with only seen items")
    lines.append(f"written to {summary['output_path']} in "
                 f"{summary.get('elapsed_seconds', '?')} s")
    return "\n".join(lines)

"""Executor side of the job: one partition of sorted events to TFRecord shards.

Each Spark partition contains whole users, sorted by user and event order (see
`windows.shard_and_sort`). `write_partition` turns it into three files,
`train/`, `eval/` and `holdout/` `part-NNNNN.tfrecord.gz` with NNNNN the
partition index, and returns only counts to the driver.

Negatives of a positive share its history features. A train negative is never
an item that the user rated in the train split. An eval negative is never an
item that the user rated anywhere before the holdout cut. Both are drawn from
the catalog of train-split items, so eval never sees an item unknown to the
train vocabulary as a negative.
"""

import dataclasses
import os
from typing import Dict, Iterator, List

import numpy as np
import pandas as pd

from schemas import features
from spark import holdout
from spark import negative_sampler
from spark import output_files
from spark import ratings_reader as rr
from spark import tfrecord_writer as tfw
from spark import windows

SPLIT_NAMES = {
    holdout.TRAIN_CODE: features.TRAIN_SPLIT,
    holdout.EVAL_CODE: features.EVAL_SPLIT,
    holdout.HOLDOUT_CODE: features.HOLDOUT_SPLIT,
}

# Counters returned per partition; the driver sums them. Order is the column
# order of the returned frame.
STAT_NAMES = (
    "users",
    "train_users", "train_positives", "train_negatives",
    "eval_users", "eval_positives", "eval_negatives",
    "holdout_examples", "cold_start_users", "holdout_all_seen_users",
    "train_users_without_negatives", "eval_users_without_negatives",
)
STATS_SCHEMA = ", ".join(f"{name} long" for name in STAT_NAMES)

_TARGET_POSITIVE = tfw.int64_feature_entry(features.TARGET, [1])
_TARGET_NEGATIVE = tfw.int64_feature_entry(features.TARGET, [0])


def shard_path(root: str, split: str, shard: int) -> str:
    """Return the path of one shard below a directory or `gs://` prefix."""
    return output_files.join(root, split, f"part-{shard:05d}.tfrecord.gz")


@dataclasses.dataclass(frozen=True)
class PartitionSettings:
    """Settings of every partition task, pickled into the task closure."""

    output_root: str
    window: int
    negatives: int
    seed: int
    catalog: object  # A Spark Broadcast of the sorted catalog (list of str).
    # fsspec options of a `gs://` output_root, from
    # `output_files.storage_options` on the driver; empty for local output.
    storage_options: Dict[str, object] = dataclasses.field(
        default_factory=dict)


class _ItemEncoder:
    """Cache of encoded BytesList elements and product_id entries per item."""

    def __init__(self):
        self._values: Dict[str, bytes] = {}
        self._product_entries: Dict[str, bytes] = {}

    def value(self, item: str) -> bytes:
        encoded = self._values.get(item)
        if encoded is None:
            encoded = tfw.encode_bytes_value(item.encode("utf-8"))
            self._values[item] = encoded
        return encoded

    def product_entry(self, item: str) -> bytes:
        entry = self._product_entries.get(item)
        if entry is None:
            entry = tfw.bytes_feature_entry(features.PRODUCT_ID, self.value(item))
            self._product_entries[item] = entry
        return entry

    def list_entry(self, key: str, items: List[str]) -> bytes:
        return tfw.bytes_feature_entry(
            key, b"".join(self.value(item) for item in items))


class _PartitionWriter:
    """Builds the examples of complete users and writes them to three shards."""

    def __init__(self, settings: PartitionSettings, shard: int):
        self._settings = settings
        self._catalog: List[str] = settings.catalog.value
        self._catalog_index = pd.Index(self._catalog)
        self._encoder = _ItemEncoder()
        # product_id entries of sampled negatives, by catalog index.
        self._negative_entries: Dict[int, bytes] = {}
        # Most users of retail data rate once, so most histories are empty.
        self._empty_history = b"".join(
            self._encoder.list_entry(key, [])
            for key in (features.TOUCHED, features.LIKED, features.DISLIKED))
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        self._files = {}
        self._writers = {}
        for split in SPLIT_NAMES.values():
            path = shard_path(settings.output_root, split, shard)
            stream, temporary = output_files.open_for_write(path)
            self._files[split] = (stream, temporary, path)
            self._writers[split] = tfw.GzipTFRecordWriter(stream)

    def close(self) -> None:
        for split, writer in self._writers.items():
            writer.close()
            stream, temporary, path = self._files[split]
            stream.close()
            output_files.finish_write(temporary, path,
                                      self._settings.storage_options)

    def abort(self) -> None:
        for stream, temporary, _ in self._files.values():
            stream.close()
            if os.path.exists(temporary):
                os.remove(temporary)

    def write_users(self, chunk: pd.DataFrame) -> None:
        """Write all examples of the users in `chunk` (complete users only)."""
        users = chunk[rr.USER].to_numpy(dtype=object)
        items = chunk[rr.ITEM].to_numpy(dtype=object)
        ratings = chunk[rr.RATING].to_numpy(dtype=np.float64)
        timestamps = chunk[rr.TIMESTAMP].to_numpy(dtype=np.int64).tolist()
        splits = chunk[holdout.SPLIT].to_numpy(dtype=np.int64)

        group_index, group_first = windows.group_rows(users)
        first_row = group_first[group_index]
        history_start = windows.window_starts(first_row, self._settings.window)
        group_users = users[group_first]
        self.stats["users"] += len(group_first)

        item_list = items.tolist()
        user_entries = [
            tfw.bytes_feature_entry(
                features.USER_ID, self._encoder.value(user))
            for user in group_users.tolist()]
        liked = (ratings > features.LIKED_ABOVE).tolist()
        disliked = (ratings < features.DISLIKED_BELOW).tolist()
        catalog_rows = self._catalog_index.get_indexer(items)

        for code in (holdout.TRAIN_CODE, holdout.EVAL_CODE):
            self._write_positives(
                code, splits, group_index, group_first, group_users,
                catalog_rows, history_start, item_list, liked, disliked,
                user_entries, timestamps)
        self._write_holdout(splits, group_first, item_list, ratings,
                            user_entries)

    def _history_entry(self, start: int, end: int, item_list: List[str],
                       liked: List[bool], disliked: List[bool]) -> bytes:
        if start == end:
            return self._empty_history
        recent = range(start, end)
        return (
            self._encoder.list_entry(features.TOUCHED, item_list[start:end]) +
            self._encoder.list_entry(
                features.LIKED, [item_list[i] for i in recent if liked[i]]) +
            self._encoder.list_entry(
                features.DISLIKED,
                [item_list[i] for i in recent if disliked[i]]))

    def _write_positives(self, code, splits, group_index, group_first,
                         group_users, catalog_rows, history_start, item_list,
                         liked, disliked, user_entries, timestamps) -> None:
        split = SPLIT_NAMES[code]
        writer = self._writers[split]
        rows = np.flatnonzero(splits == code)
        if len(rows) == 0:
            return
        self.stats[f"{split}_users"] += len(np.unique(group_index[rows]))
        self.stats[f"{split}_positives"] += len(rows)

        negatives = self._sample(code, splits, group_index, group_first,
                                 group_users, catalog_rows, rows)
        entry = self._encoder.product_entry
        negative_entries = self._negative_entries
        groups = group_index.tolist()
        starts = history_start.tolist()
        written_negatives = 0
        for position, row in enumerate(rows.tolist()):
            # Negatives carry the time of the event they were drawn for.
            shared = (user_entries[groups[row]] +
                      self._history_entry(starts[row], row, item_list,
                                          liked, disliked) +
                      tfw.int64_feature_entry(features.TIMESTAMP,
                                              [timestamps[row]]))
            writer.write(tfw.encode_example(
                (shared, entry(item_list[row]), _TARGET_POSITIVE)))
            for negative in negatives[position]:
                if negative < 0:
                    continue
                product = negative_entries.get(negative)
                if product is None:
                    product = entry(self._catalog[negative])
                    negative_entries[negative] = product
                writer.write(tfw.encode_example(
                    (shared, product, _TARGET_NEGATIVE)))
                written_negatives += 1
        self.stats[f"{split}_negatives"] += written_negatives

    def _sample(self, code, splits, group_index, group_first, group_users,
                catalog_rows, rows) -> List[List[int]]:
        """Draw the negatives of each positive row; -1 marks no negative."""
        per_positive = self._settings.negatives
        if per_positive == 0 or not self._catalog:
            if per_positive and len(rows):
                self.stats[f"{SPLIT_NAMES[code]}_users_without_negatives"] += (
                    len(np.unique(group_index[rows])))
            return [[] for _ in range(len(rows))]

        # Items a user may not get as negatives: the user's own train-split
        # items for train, every training-period item for eval.
        if code == holdout.TRAIN_CODE:
            excluded = splits == holdout.TRAIN_CODE
        else:
            excluded = splits != holdout.HOLDOUT_CODE
        excluded &= catalog_rows >= 0

        # Counter of each draw within the user's stream: the positive's rank
        # among the user's positives of this split, times per_positive, plus k.
        in_split = (splits == code).astype(np.int64)
        cumulative = np.cumsum(in_split)
        before_group = cumulative[group_first] - in_split[group_first]
        rank = cumulative[rows] - 1 - before_group[group_index[rows]]
        counters = (np.repeat(rank * per_positive, per_positive) +
                    np.tile(np.arange(per_positive), len(rows)))
        draw_groups = np.repeat(group_index[rows], per_positive)

        keys = negative_sampler.user_keys(
            self._settings.seed, SPLIT_NAMES[code], group_users.tolist())
        drawn, impossible = negative_sampler.sample_negatives(
            len(self._catalog), group_index[excluded], catalog_rows[excluded],
            draw_groups, counters, keys)
        if impossible.any():
            self.stats[f"{SPLIT_NAMES[code]}_users_without_negatives"] += len(
                np.unique(draw_groups[impossible]))
        return drawn.reshape(len(rows), per_positive).tolist()

    def _write_holdout(self, splits, group_first, item_list, ratings,
                       user_entries) -> None:
        group_last = np.append(group_first[1:], len(splits))
        in_training = (splits != holdout.HOLDOUT_CODE).astype(np.int64)
        training_counts = np.add.reduceat(in_training, group_first)
        has_holdout = training_counts < group_last - group_first
        writer = self._writers[features.HOLDOUT_SPLIT]
        for group in np.flatnonzero(has_holdout).tolist():
            first, last = int(group_first[group]), int(group_last[group])
            example, status = holdout.build_holdout_user(
                item_list[first:last], ratings[first:last].tolist(),
                int(training_counts[group]), self._settings.window)
            if status == "cold_start":
                self.stats["cold_start_users"] += 1
            elif status == "all_seen":
                self.stats["holdout_all_seen_users"] += 1
            if example is None:
                continue
            self.stats["holdout_examples"] += 1
            encoder = self._encoder
            writer.write(tfw.encode_example((
                user_entries[group],
                encoder.list_entry(features.TOUCHED, example.touched),
                encoder.list_entry(features.LIKED, example.liked),
                encoder.list_entry(features.DISLIKED, example.disliked),
                encoder.list_entry(features.SEEN, example.seen),
                encoder.list_entry(features.HOLDOUT_ITEMS,
                                   example.holdout_items),
                tfw.int64_feature_entry(features.HISTORY_LENGTH,
                                        [example.history_length]),
            )))


def write_partition(settings: PartitionSettings, shard: int,
                    batches: Iterator[pd.DataFrame]) -> Dict[str, int]:
    """Write the shards of one partition and return its counters.

    Args:
      settings: Output root, window, negatives, seed and catalog.
      shard: Partition index, used as the shard number.
      batches: The partition's rows in order, in batches that may split one
        user's events; a user's rows are buffered until they are complete.
    """
    writer = _PartitionWriter(settings, shard)
    try:
        pending = None
        for batch in batches:
            if pending is not None and len(pending):
                batch = pd.concat([pending, batch], ignore_index=True)
            if not len(batch):
                continue
            users = batch[rr.USER].to_numpy(dtype=object)
            # The last user may continue in the next batch.
            other = np.flatnonzero(users != users[-1])
            complete = int(other[-1]) + 1 if len(other) else 0
            if complete:
                writer.write_users(batch.iloc[:complete])
            pending = batch.iloc[complete:].reset_index(drop=True)
        if pending is not None and len(pending):
            writer.write_users(pending)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.stats


def partition_function(settings: PartitionSettings):
    """Return the `mapInPandas` function that writes one partition's shards."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # Imported here so that the closure pickles without pyspark state.
        from pyspark import TaskContext
        shard = TaskContext.get().partitionId()
        stats = write_partition(settings, shard, batches)
        yield pd.DataFrame([[stats[name] for name in STAT_NAMES]],
                           columns=list(STAT_NAMES))

    return run

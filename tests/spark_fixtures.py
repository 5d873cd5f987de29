"""Helpers shared by the Spark job tests: input files, runs and decoding."""

import glob
import os
import pathlib
from typing import Dict, List, Sequence

from spark import job
from spark.config import ExampleJobConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Real rating data lives outside the repository (not redistributable).
DATA_DIR = REPO_ROOT / ".." / "shared" / "data"
MOVIELENS_RATINGS = DATA_DIR / "movielens-latest-small" / "ratings.csv"
AMAZON_MAGAZINES = DATA_DIR / "amazon" / "magazine_subscriptions.csv"


def write_lines(directory: pathlib.Path, lines: Sequence[str],
                name: str = "ratings.csv") -> str:
    """Write text lines to a new file and return its path."""
    path = directory / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def amazon_lines(events: Sequence[tuple]) -> List[str]:
    """Format (user, item, rating, timestamp) tuples in the amazon layout."""
    return [f"{item},{user},{rating},{timestamp}"
            for user, item, rating, timestamp in events]


def run(spark, input_path: str, output_path: pathlib.Path,
        **settings) -> Dict[str, object]:
    """Run the job with test defaults (2 shards) and return its summary."""
    settings.setdefault("num_shards", 2)
    config = ExampleJobConfig(input_path=input_path,
                              output_path=str(output_path), **settings)
    return job.run_job(config, spark)


def shard_files(output: pathlib.Path, split: str) -> List[str]:
    return sorted(glob.glob(os.path.join(str(output), split, "part-*")))


def read_examples(output: pathlib.Path, split: str) -> List[Dict[str, list]]:
    """Decode one split with TensorFlow into dicts of str or int lists."""
    import tensorflow as tf  # Heavy; imported only by tests that decode.

    examples = []
    dataset = tf.data.TFRecordDataset(shard_files(output, split),
                                      compression_type="GZIP")
    for record in dataset:
        example = tf.train.Example.FromString(record.numpy())
        decoded = {}
        for key, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            if kind == "bytes_list":
                decoded[key] = [v.decode("utf-8")
                                for v in feature.bytes_list.value]
            elif kind == "int64_list":
                decoded[key] = list(feature.int64_list.value)
            else:
                decoded[key] = list(feature.float_list.value)
        examples.append(decoded)
    return examples


def shard_bytes(output: pathlib.Path) -> Dict[str, bytes]:
    """Return the raw bytes of every shard, keyed by split/file name."""
    contents = {}
    for split in ("train", "eval", "holdout"):
        for path in shard_files(output, split):
            with open(path, "rb") as handle:
                contents[f"{split}/{os.path.basename(path)}"] = handle.read()
    return contents

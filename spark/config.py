"""Settings of the example job and the command-line parser that fills them."""

import argparse
import dataclasses
from typing import Optional, Sequence

from schemas import features

LAYOUTS = ("amazon", "movielens")
HOLDOUT_MODES = ("global_time", "per_user")
EVAL_SPLIT_MODES = ("time", "user")


@dataclasses.dataclass(frozen=True)
class ExampleJobConfig:
    """Settings of one run of the example job.

    Attributes:
        input_path: Ratings CSV file (or a directory or glob of CSV files), as
            a local path or a `gs://` URI.
        output_path: Directory to create, as a local path or a `gs://` prefix.
        layout: `amazon` (no header, `item,user,rating,timestamp`, ratings 1 to 5)
            or `movielens` (header `userId,movieId,rating,timestamp`, ratings 0.5
                to 5).
        window: Number N of previous events that form an event's history.
        holdout: `global_time` cuts all users at one timestamp quantile.
            `per_user` reproduces the reference walk-through's protocol. Users
            with at least `per_user_cut` events keep events 1 to
            `per_user_cut - 1` for training and hold out the events from number
            `per_user_cut` on. Other users keep all their events for training.
        holdout_quantile: Quantile of event timestamps used as the holdout cut.
        per_user_cut: 1-based number of the first held-out event of a user in
            `per_user` mode.
        eval_split: `time` sends the latest training-period events to eval;
            `user` sends all training-period events of a seeded share of users.
        eval_quantile: Quantile of training-period timestamps used as the eval
            cut in `time` mode.
        eval_user_fraction: Share of users sent to eval in `user` mode.
        negatives: Sampled negatives per positive example.
        seed: Seed of the eval user split and the negative sampler.
        num_shards: Number of output files per split; rows are assigned to shards
            by a hash of the user id.
        max_reject_fraction: Largest share of invalid input rows that the job
            accepts before it fails.
        overwrite: Replace an existing output directory. A `gs://` output is
            deleted before the job starts, not after it succeeds.
        master: Spark master URL used when the job creates its own session.
        driver_memory: `spark.driver.memory` used when the job creates its own
            session.
    """

    input_path: str
    output_path: str
    layout: str = "amazon"
    window: int = features.DEFAULT_WINDOW
    holdout: str = "global_time"
    holdout_quantile: float = 0.9
    per_user_cut: int = 10
    eval_split: str = "time"
    eval_quantile: float = 0.9
    eval_user_fraction: float = 0.1
    negatives: int = 3
    seed: int = 0
    num_shards: int = 8
    max_reject_fraction: float = 0.01
    overwrite: bool = False
    master: str = "local[*]"
    driver_memory: str = "4g"

    def __post_init__(self):
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("holdout", self.holdout, HOLDOUT_MODES)
        _check_choice("eval_split", self.eval_split, EVAL_SPLIT_MODES)
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}.")
        if self.per_user_cut < 2:
            raise ValueError(
                f"per_user_cut must be at least 2 so that every evaluated user has "
                f"a training event, got {self.per_user_cut}.")
        for name in ("holdout_quantile", "eval_quantile"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}.")
        if not 0.0 <= self.eval_user_fraction < 1.0:
            raise ValueError(
                f"eval_user_fraction must be in [0, 1), got "
                f"{self.eval_user_fraction}.")
        if self.negatives < 0:
            raise ValueError(f"negatives must be 0 or more, got {self.negatives}.")
        if self.num_shards < 1:
            raise ValueError(
                f"num_shards must be at least 1, got {self.num_shards}.")
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            raise ValueError(
                f"max_reject_fraction must be in [0, 1], got "
                f"{self.max_reject_fraction}.")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def build_arg_parser() -> argparse.ArgumentParser:
    """Build the parser of the `spark/make_examples.py` command line."""
    defaults = ExampleJobConfig(input_path="", output_path="")
    parser = argparse.ArgumentParser(
        prog="make_examples.py",
        description=(
            "Turn a ratings CSV into gzip TFRecord shards of tf.train.Example "
            "(train/, eval/, holdout/) for TFX ImportExampleGen."))
    parser.add_argument("--input", dest="input_path", required=True,
        help="Ratings CSV file, directory or glob (local path or gs:// URI).")
    parser.add_argument("--output", dest="output_path", required=True,
        help="Output directory to create (local path or gs:// prefix).")

    parser.add_argument(
        "--layout", choices=LAYOUTS, default=defaults.layout,
        help="amazon: no header, item,user,rating,timestamp, ratings 1..5. "
        "movielens: header userId,movieId,rating,timestamp, ratings 0.5..5. "
        "Default: %(default)s.")

    parser.add_argument(
        "--window", type=int, default=defaults.window,
        help="Number of previous events of the user that form the history "
        "features. Default: %(default)s.")

    parser.add_argument(
        "--holdout", choices=HOLDOUT_MODES, default=defaults.holdout,
        help="global_time: events with a timestamp above the "
        "--holdout-quantile of all timestamps are held out. per_user: the "
        "reference walk-through's protocol. Only users with at least "
        "--per-user-cut events are evaluated. Their events 1 to cut-1 in time "
        "order are the training period and the events from number cut on are "
        "held out. Other users keep all events for training. "
        "Default: %(default)s.")
    parser.add_argument(
        "--holdout-quantile", type=float, default=defaults.holdout_quantile,
        help="Quantile (0, 1] of event timestamps used as the holdout cut "
        "(nearest rank). Default: %(default)s.")
    parser.add_argument(
        "--per-user-cut", type=int, default=defaults.per_user_cut,
        help="With --holdout per_user: 1-based number of a user's first "
        "held-out event. Default: %(default)s.")

    parser.add_argument(
        "--eval-split", choices=EVAL_SPLIT_MODES, default=defaults.eval_split,
        help="time: training-period events after the --eval-quantile of "
        "training-period timestamps go to eval. user: all training-period "
        "events of a seeded --eval-user-fraction of users go to eval. "
        "Default: %(default)s.")
    parser.add_argument(
        "--eval-quantile", type=float, default=defaults.eval_quantile,
        help="Quantile (0, 1] of training-period timestamps used as the eval "
        "cut. Default: %(default)s.")
    parser.add_argument(
        "--eval-user-fraction", type=float, default=defaults.eval_user_fraction,
        help="Share [0, 1) of users whose events go to eval with --eval-split "
        "user. Default: %(default)s.")

    parser.add_argument(
        "--negatives", type=int, default=defaults.negatives,
        help="Sampled negative examples per positive example. "
        "Default: %(default)s.")
    parser.add_argument(
        "--seed", type=int, default=defaults.seed,
        help="Seed of the eval user split and the negative sampler. "
        "Default: %(default)s.")

    parser.add_argument(
        "--num-shards", type=int, default=defaults.num_shards,
        help="Output files per split. Default: %(default)s.")
    parser.add_argument(
        "--max-reject-fraction", type=float,
        default=defaults.max_reject_fraction,
        help="Fail when more than this share of input rows is invalid. "
        "Default: %(default)s.")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="Replace the output directory if it exists.")

    parser.add_argument(
        "--master", default=defaults.master,
        help="Spark master when no session exists yet (ignored under "
        "spark-submit, which sets its own). Default: %(default)s.")
    parser.add_argument(
        "--driver-memory", default=defaults.driver_memory,
        help="spark.driver.memory when the job starts the JVM itself. Under "
        "spark-submit, pass --driver-memory to spark-submit instead. "
        "Default: %(default)s.")
    return parser


def config_from_args(argv: Optional[Sequence[str]] = None) -> ExampleJobConfig:
    """Parse command-line arguments into an `ExampleJobConfig`."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        return ExampleJobConfig(**vars(args))
    except ValueError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line only satisfies type checkers.

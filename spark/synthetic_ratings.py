"""Seeded synthetic ratings shaped like Amazon Luxury Beauty, for demos and
benchmarks.

At scale 1 the output has the size of the Amazon Review Data (2018) Luxury
Beauty ratings-only file: 574,628 rows, about 416,000 users and 12,000 items.
Item popularity follows a Zipf-like law, and so does user activity, which
leaves about three quarters of the users with a single rating. Ratings lean
towards 5 and timestamps are whole days, as in the real file. Only the
headline counts, the rating shares and the day range come from the real
file; the popularity exponents and the time trend are assumptions.

Usage:
    python -m spark.synthetic_ratings --output ratings.csv --scale 1
"""

import argparse
import os
from typing import Optional, Sequence

import numpy as np
import pandas as pd

BASE_ROWS = 574_628
BASE_USERS = 416_174
BASE_ITEMS = 12_120
# Share of ratings 1..5 and the covered days (2004-04-23 to 2018-05-12), as
# measured on the first 5,000 rows of the real Luxury Beauty file.
_RATING_SHARES = (0.097, 0.040, 0.063, 0.100, 0.700)
_FIRST_DAY = 12_531
_LAST_DAY = 17_663
_SECONDS_PER_DAY = 86_400


def generate(scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Generate ratings in the amazon layout.

    Args:
      scale: Multiplier of rows, users and items relative to Luxury Beauty.
      seed: Seed of all random draws; equal seeds give equal frames.

    Returns:
      A frame with columns item, user, rating (float), timestamp (Unix
      seconds at midnight UTC), in the amazon layout's column order. Repeated
      (user, item) pairs can occur, as in the real data.
    """
    rng = np.random.default_rng(seed)
    rows = int(round(BASE_ROWS * scale))
    users = max(1, int(round(BASE_USERS * scale)))
    items = max(1, int(round(BASE_ITEMS * scale)))

    # Every user rates at least once; the remaining rows go to users drawn
    # from a heavy-tailed activity law, so most users keep one rating.
    user_of_row = np.arange(min(users, rows))
    extra = rows - len(user_of_row)
    if extra > 0:
        activity = _zipf_weights(users, exponent=0.6, rng=rng)
        user_of_row = np.concatenate(
            [user_of_row, rng.choice(users, size=extra, p=activity)])
    item_weights = _zipf_weights(items, exponent=0.8, rng=rng)
    item_of_row = rng.choice(items, size=rows, p=item_weights)
    ratings = rng.choice(np.arange(1, 6), size=rows, p=_RATING_SHARES)
    # Assumed trend: later days have more reviews (a triangular law).
    days = rng.triangular(_FIRST_DAY, _LAST_DAY, _LAST_DAY, size=rows)
    timestamps = days.astype(np.int64) * _SECONDS_PER_DAY

    frame = pd.DataFrame({
        "item": _ids("B", item_of_row),
        "user": _ids("A", user_of_row),
        "rating": ratings.astype(np.float64),
        "timestamp": timestamps,
    })
    return frame.iloc[rng.permutation(rows)].reset_index(drop=True)


def _zipf_weights(count: int, exponent: float,
                  rng: np.random.Generator) -> np.ndarray:
    # Weights 1/rank**exponent, assigned to ids in a random order so that
    # popularity does not follow the id order.
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    weights = weights[rng.permutation(count)]
    return weights / weights.sum()


def _ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    # Fixed-width ids like ASINs and reviewer ids: letters and digits.
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), 9))


def write_csv(path: str, scale: float = 1.0, seed: int = 0) -> int:
    """Write synthetic ratings without a header (amazon layout).

    Returns:
      The number of rows written.
    """
    frame = generate(scale, seed)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    frame.to_csv(path, header=False, index=False, float_format="%.1f")
    return len(frame)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write seeded synthetic ratings in the amazon layout "
        "(item,user,rating,timestamp; no header).")
    parser.add_argument("--output", required=True, help="CSV file to write.")
    parser.add_argument(
        "--scale", type=float, default=1.0,
        help="Size relative to Amazon Luxury Beauty (574,628 rows). "
        "Default: %(default)s.")
    parser.add_argument("--seed", type=int, default=0,
                        help="Random seed. Default: %(default)s.")
    args = parser.parse_args(argv)
    rows = write_csv(args.output, args.scale, args.seed)
    print(f"wrote {rows} rows to {args.output}")


if __name__ == "__main__":
    main()

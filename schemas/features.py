"""Feature names and the on-disk contract between the Spark job and TFX.

The Spark job writes gzip-compressed TFRecord files of `tf.train.Example`
protos. Ids stay raw strings (bytes features); Transform maps them to
integers later, with vocabularies computed on the training split only.

Training and evaluation examples (`train/`, `eval/`) carry:

| feature                  | type        | values per example |
|--------------------------|-------------|--------------------|
| `user_id`                | bytes       | 1                  |
| `product_id`             | bytes       | 1                  |
| `touched_product_id`     | bytes list  | 0 to N             |
| `liked_product_id`       | bytes list  | 0 to N             |
| `disliked_product_id`    | bytes list  | 0 to N             |
| `target`                 | int64       | 1 (1 = observed event, 0 = sampled negative) |
| `timestamp`              | int64       | 1, Unix seconds of the event; a negative has its positive's |

Holdout examples (`holdout/`) describe one user at the holdout cut:

| feature                  | type        | values per example |
|--------------------------|-------------|--------------------|
| `user_id`                | bytes       | 1                  |
| `touched_product_id`     | bytes list  | 0 to N, the last N items before the cut |
| `liked_product_id`       | bytes list  | 0 to N             |
| `disliked_product_id`    | bytes list  | 0 to N             |
| `seen_product_id`        | bytes list  | every distinct item the user rated before the cut |
| `holdout_product_id`     | bytes list  | 1 or more: distinct items rated after the cut and not in `seen_product_id` |
| `history_length`         | int64       | 1, the number of the user's events before the cut |

History lists are ordered oldest first, so the last entry is the most recent
item. `N` is the window length of the Spark job (10 by default).
"""

USER_ID = "user_id"
PRODUCT_ID = "product_id"
TOUCHED = "touched_product_id"
LIKED = "liked_product_id"
DISLIKED = "disliked_product_id"
TARGET = "target"
# Baselines such as recent popularity read it; Transform turns it into
# EXAMPLE_AGE for the models.
TIMESTAMP = "timestamp"
# Transformed feature only: how long before the newest training event an
# example happened, as a fraction of the training period (0 = newest, 1 =
# oldest; later eval examples are 0). Serving and holdout examples have no
# timestamp and take age 0, "now", as Covington et al. (section 3.3) set it
# at serving time.
EXAMPLE_AGE = "example_age"

SEEN = "seen_product_id"
HOLDOUT_ITEMS = "holdout_product_id"
HISTORY_LENGTH = "history_length"

HISTORY_FEATURES = (TOUCHED, LIKED, DISLIKED)
# Features that hold product ids and therefore share one vocabulary.
PRODUCT_FEATURES = (PRODUCT_ID,) + HISTORY_FEATURES

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
HOLDOUT_SPLIT = "holdout"

# Ratings strictly above LIKED_ABOVE count as liked, strictly below
# DISLIKED_BELOW as disliked; a rating equal to 3 is neither.
LIKED_ABOVE = 3.0
DISLIKED_BELOW = 3.0

DEFAULT_WINDOW = 10

"""Grid search of ALS hyperparameters on the eval split, not the holdout.

Choosing hyperparameters by holdout metrics would tune the baseline on the
test set and overstate it. Here each grid point is trained on the train
positives and scored on a validation set built from the eval split. Its
users are those with both train and eval positives, and each user's
relevant items are the distinct eval items absent from the user's train
items. This needs the time
eval split (`eval_split="time"`); with the user split, eval users have no
train positives and the validation set is empty.

The holdout metrics of every grid point are recorded too, so that a report
can show how far validation and holdout choices differ, but they never
select the settings.

    python -m baselines.tuning --examples runs/x/examples --output grid.json
"""

import argparse
import dataclasses
import itertools
import json
import sys
import time
from typing import Dict, List, Optional, Sequence

from absl import logging

from baselines import als as als_lib
from baselines import data
from baselines import popularity
from baselines.ranking import Catalog, rank_users
from evaluation import ranking_metrics
from schemas import features

DEFAULT_RANKS = (16, 32, 64)
DEFAULT_REG_PARAMS = (0.01, 0.1, 1.0)
DEFAULT_ALPHAS = (1.0, 10.0, 40.0)
SELECTION_METRIC = "map@10"
_KS = (10, 50)


def validation_users(train: data.Interactions,
                     eval_positives: data.Interactions
                     ) -> List[data.HoldoutExample]:
  """Build holdout-shaped users from the eval split, ranked on train items.

  `touched` is left empty, because only ALS, which ignores it, is tuned.
  """
  seen: Dict[str, set] = {}
  for user, item in zip(train.users, train.items):
    seen.setdefault(user, set()).add(item)
  history_length: Dict[str, int] = {}
  for user in train.users:
    history_length[user] = history_length.get(user, 0) + 1
  relevant: Dict[str, List[str]] = {}
  for user, item in zip(eval_positives.users, eval_positives.items):
    if user not in seen or item in seen[user]:
      continue
    items = relevant.setdefault(user, [])
    if item not in items:
      items.append(item)
  return [data.HoldoutExample(user_id=user, touched=[], liked=[], disliked=[],
                              seen=sorted(seen[user]), relevant=items,
                              history_length=history_length[user])
          for user, items in sorted(relevant.items())]


def _means(ranker, users, exclude_seen: bool) -> Dict[str, float]:
  rankings = rank_users(ranker, users, max(_KS), exclude_seen=exclude_seen)
  sums = ranking_metrics.MetricSums()
  for user in users:
    sums.add_user(rankings[user.user_id], user.relevant, _KS)
  return {key: round(value, 6) for key, value in sums.means().items()}


def tune_als(examples_dir: str, ranks: Sequence[int] = DEFAULT_RANKS,
             reg_params: Sequence[float] = DEFAULT_REG_PARAMS,
             alphas: Sequence[float] = DEFAULT_ALPHAS, max_iter: int = 10,
             seed: int = 0, exclude_seen: bool = True,
             spark=None) -> Dict[str, object]:
  """Train ALS at every grid point; select by validation MAP@10.

  Returns:
    {"grid": [per-point settings, validation and holdout metrics],
     "best": settings of the selected point, "most_popular": its
     validation and holdout metrics, "validation_users": count,
     "holdout_users": count}.

  Raises:
    ValueError: No user has both train and new eval positives.
  """
  train = data.read_interactions(examples_dir, (features.TRAIN_SPLIT,))
  eval_positives = data.read_interactions(examples_dir,
                                          (features.EVAL_SPLIT,))
  catalog = Catalog(train.catalog())
  counts = popularity.item_counts(train.items, catalog)
  validation = validation_users(train, eval_positives)
  if not validation:
    raise ValueError(f"no user in {examples_dir} has both train and new eval "
                     "positives; tuning needs the time eval split")
  holdout = data.read_holdout(examples_dir)
  spark = spark or als_lib.local_session()

  grid = []
  for rank, reg_param, alpha in itertools.product(ranks, reg_params, alphas):
    settings = als_lib.AlsSettings(rank=rank, reg_param=reg_param,
                                   alpha=alpha, max_iter=max_iter, seed=seed)
    started = time.monotonic()
    ranker = als_lib.AlsRanker(catalog, train, counts, settings, spark=spark)
    point = {
        "settings": dataclasses.asdict(settings),
        "validation": _means(ranker, validation, exclude_seen),
        "holdout": _means(ranker, holdout, exclude_seen),
        "seconds": round(time.monotonic() - started, 1),
    }
    logging.info("ALS %s: validation %s %.4f, holdout %.4f", point["settings"],
                 SELECTION_METRIC, point["validation"][SELECTION_METRIC],
                 point["holdout"][SELECTION_METRIC])
    grid.append(point)
  # Ties go to the earlier grid point, i.e. the smaller rank.
  best = max(grid, key=lambda point: point["validation"][SELECTION_METRIC])
  # Most popular on the same users, as the bar each grid point must clear.
  most_popular = popularity.PopularityRanker(catalog, counts)
  reference = {"validation": _means(most_popular, validation, exclude_seen),
               "holdout": _means(most_popular, holdout, exclude_seen)}
  return {"grid": grid, "best": best["settings"], "most_popular": reference,
          "selection_metric": SELECTION_METRIC,
          "validation_users": len(validation), "holdout_users": len(holdout)}


def main(argv: Optional[List[str]] = None) -> int:
  logging.set_verbosity(logging.INFO)
  parser = argparse.ArgumentParser(
      prog="python -m baselines.tuning",
      description="Grid-search ALS on the eval split of a Spark job output.")
  parser.add_argument("--examples", required=True,
                      help="Output directory of spark.make_examples.")
  parser.add_argument("--output", required=True, help="JSON file to write.")
  parser.add_argument("--ranks", type=int, nargs="+", default=DEFAULT_RANKS,
                      help="Factor dimensions to try.")
  parser.add_argument("--reg-params", type=float, nargs="+",
                      default=DEFAULT_REG_PARAMS,
                      help="L2 regularization values to try.")
  parser.add_argument("--alphas", type=float, nargs="+",
                      default=DEFAULT_ALPHAS,
                      help="Confidence weights per positive to try.")
  parser.add_argument("--max-iter", type=int, default=10,
                      help="ALS alternating iterations.")
  parser.add_argument("--seed", type=int, default=0, help="ALS random seed.")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  result = tune_als(args.examples, args.ranks, args.reg_params, args.alphas,
                    args.max_iter, args.seed)
  with open(args.output, "w", encoding="utf-8") as output:
    json.dump(result, output, indent=2)
    output.write("\n")
  print(json.dumps(result["best"]))
  return 0


if __name__ == "__main__":
  sys.exit(main())

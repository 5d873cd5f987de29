"""Non-neural baselines that the candidate-generation model must beat.

Each baseline learns from the same training positives as the model, ranks
the same training catalog for the same holdout users, and is scored with
`evaluation.ranking_metrics`. `run_baselines` runs them all.
"""

from baselines.runner import ALL_METHODS
from baselines.runner import BaselineRun
from baselines.runner import BaselineSettings
from baselines.runner import run_baselines

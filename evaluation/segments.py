"""User segments by history length, for per-segment ranking metrics.

`history_length` is the number of a holdout user's events before the cut.
Users with one or two events are where id-based models are weakest, so the
report shows each bucket separately instead of letting heavy users dominate
the overall means.
"""

from typing import Optional, Tuple

# (name, lowest length, highest length or None for no upper bound).
SEGMENTS: Tuple[Tuple[str, int, Optional[int]], ...] = (
    ("1", 1, 1),
    ("2-4", 2, 4),
    ("5-9", 5, 9),
    ("10+", 10, None),
)
SEGMENT_NAMES = tuple(name for name, _, _ in SEGMENTS)


def segment_of(history_length: int) -> str:
  """Return the segment name of a user with `history_length` past events.

  Raises:
    ValueError: `history_length` is below 1; holdout users always have at
      least one event before the cut.
  """
  for name, low, high in SEGMENTS:
    if history_length >= low and (high is None or history_length <= high):
      return name
  raise ValueError(f"history_length must be at least 1, got {history_length}")

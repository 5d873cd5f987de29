"""The header check that catches a wrong --layout before Spark starts."""

import pytest

from spark import ratings_reader as rr


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_amazon_file_read_as_movielens_rejected(tmp_path):
    path = _write(tmp_path, "lb.csv", "B001,A1,5.0,1400000000\n")
    with pytest.raises(rr.InputDataError, match="does not start with"):
        rr.check_layout(path, "movielens")


def test_movielens_file_read_as_amazon_rejected(tmp_path):
    path = _write(tmp_path, "ml.csv",
                  "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    with pytest.raises(rr.InputDataError, match="--layout movielens"):
        rr.check_layout(path, "amazon")


def test_matching_layouts_pass(tmp_path):
    movielens = _write(tmp_path, "ml.csv",
                       "userId,movieId,rating,timestamp\r\n1,1,4.0,9\r\n")
    amazon = _write(tmp_path, "lb.csv", "B001,A1,5.0,1400000000\n")
    rr.check_layout(movielens, "movielens")
    rr.check_layout(amazon, "amazon")


def test_real_files_match_their_layouts():
    import os
    root = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "..", "shared", "data")
    movielens = os.path.join(root, "movielens-latest-small", "ratings.csv")
    amazon = os.path.join(root, "amazon", "magazine_subscriptions.csv")
    if not (os.path.exists(movielens) and os.path.exists(amazon)):
        pytest.skip(f"real data not found under {root}")
    rr.check_layout(movielens, "movielens")
    rr.check_layout(amazon, "amazon")
    with pytest.raises(rr.InputDataError):
        rr.check_layout(amazon, "movielens")

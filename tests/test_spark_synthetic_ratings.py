"""Tests of the synthetic ratings generator."""

from spark import synthetic_ratings


def test_generator_shape_at_small_scale():
    frame = synthetic_ratings.generate(scale=0.01, seed=1)
    assert len(frame) == 5_746
    assert frame["user"].nunique() == 4_162
    assert frame["item"].nunique() <= 121
    assert list(frame.columns) == ["item", "user", "rating", "timestamp"]
    assert set(frame["rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (frame["timestamp"] % 86_400 == 0).all()


def test_generator_deterministic_per_seed():
    first = synthetic_ratings.generate(scale=0.005, seed=3)
    second = synthetic_ratings.generate(scale=0.005, seed=3)
    other = synthetic_ratings.generate(scale=0.005, seed=4)
    assert first.equals(second)
    assert not first.equals(other)


def test_csv_readable_as_amazon_layout(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = synthetic_ratings.write_csv(str(path), scale=0.001, seed=0)
    lines = path.read_text().splitlines()
    assert len(lines) == rows
    item, user, rating, timestamp = lines[0].split(",")
    assert item.startswith("B")
    assert user.startswith("A")
    assert rating in {"1.0", "2.0", "3.0", "4.0", "5.0"}
    assert timestamp.isdigit()

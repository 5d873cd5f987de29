"""Tests of the hand-written tf.train.Example and TFRecord encoding."""

import gzip
import io

import pytest

from spark import tfrecord_writer as tfw

tf = pytest.importorskip("tensorflow")


def _write(records, path):
    with open(path, "wb") as stream:
        writer = tfw.GzipTFRecordWriter(stream)
        for record in records:
            writer.write(record)
        writer.close()


def test_example_decodes_with_tensorflow():
    encoded = tfw.example_from_dict({
        "user_id": "u1",
        "touched_product_id": ["a", "bé", ""],
        "liked_product_id": [],
        "target": 1,
        "history_length": [0, 300, 2**40],
    })
    example = tf.train.Example.FromString(encoded)
    feature = example.features.feature
    assert list(feature["user_id"].bytes_list.value) == [b"u1"]
    assert list(feature["touched_product_id"].bytes_list.value) == [
        b"a", "bé".encode("utf-8"), b""]
    assert list(feature["liked_product_id"].bytes_list.value) == []
    assert feature["liked_product_id"].WhichOneof("kind") == "bytes_list"
    assert list(feature["target"].int64_list.value) == [1]
    assert list(feature["history_length"].int64_list.value) == [0, 300, 2**40]


def test_example_equals_tensorflow_proto():
    expected = tf.train.Example(features=tf.train.Features(feature={
        "product_id": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[b"x" * 200])),
        "target": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
    }))
    encoded = tfw.example_from_dict({"product_id": "x" * 200, "target": 0})
    assert tf.train.Example.FromString(encoded) == expected


def test_negative_int64_encoding():
    encoded = tfw.example_from_dict({"value": [-1, -(2**63)]})
    example = tf.train.Example.FromString(encoded)
    assert list(example.features.feature["value"].int64_list.value) == [
        -1, -(2**63)]


def test_varint_known_values():
    assert tfw.encode_varint(0) == b"\x00"
    assert tfw.encode_varint(300) == b"\xac\x02"
    assert tfw.encode_varint(-1) == b"\xff" * 9 + b"\x01"


def test_gzip_records_read_by_tensorflow(tmp_path):
    records = [tfw.example_from_dict({"user_id": f"u{i}", "target": i % 2})
               for i in range(2500)]
    path = str(tmp_path / "part-00000.tfrecord.gz")
    _write(records, path)
    read = [r.numpy() for r in
            tf.data.TFRecordDataset([path], compression_type="GZIP")]
    assert read == records


def test_crc_matches_tensorflow_writer(tmp_path):
    """Uncompressed framing must equal what TensorFlow itself writes."""
    record = tfw.example_from_dict({"user_id": "u", "target": 1})
    tf_path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(tf_path) as writer:
        writer.write(record)
    with open(tf_path, "rb") as handle:
        assert tfw.frame_record(record) == handle.read()


def test_empty_shard_readable(tmp_path):
    path = str(tmp_path / "empty.tfrecord.gz")
    _write([], path)
    assert list(tf.data.TFRecordDataset([path], compression_type="GZIP")) == []


def test_gzip_output_deterministic():
    outputs = []
    for _ in range(2):
        stream = io.BytesIO()
        writer = tfw.GzipTFRecordWriter(stream)
        writer.write(tfw.example_from_dict({"user_id": "u"}))
        writer.close()
        outputs.append(stream.getvalue())
    assert outputs[0] == outputs[1]
    assert gzip.decompress(outputs[0])

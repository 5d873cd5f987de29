"""Encoding of tf.train.Example protos and gzip TFRecord files in pure Python.

Executors must not import TensorFlow, so this module writes the protobuf wire
format by hand. The messages involved (tensorflow/core/example/example.proto
and feature.proto) are:

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                            Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    Int64List { repeated int64 value = 1 [packed = true]; }

A map entry is a message with the key as field 1 and the value as field 2.
TFRecord framing (tensorflow/core/lib/io/record_writer.cc) is: uint64 length,
uint32 masked CRC-32C of the length bytes, the data, uint32 masked CRC-32C of
the data, all little-endian.
"""

import gzip
import struct
from typing import BinaryIO, Dict, Iterable, Sequence

import google_crc32c

# Wire-format tags: (field number << 3) | wire type 2 (length-delimited).
_TAG_FIELD_1 = b"\x0a"
_TAG_FIELD_2 = b"\x12"
_TAG_FIELD_3 = b"\x1a"
_MASK_DELTA = 0xA282EAD8
# zlib's default level: a fair trade of speed and size for shards that are
# written once and read a few times.
_GZIP_LEVEL = 6


def encode_varint(value: int) -> bytes:
    """Encode an int64 as a protobuf varint (negative values take 10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + encode_varint(len(payload)) + payload


def encode_bytes_value(value: bytes) -> bytes:
    """Encode one element of a BytesList; concatenate elements for a list."""
    return _length_delimited(_TAG_FIELD_1, value)


def bytes_feature_entry(key: str, encoded_values: bytes) -> bytes:
    """Encode one `Features.feature` map entry holding a BytesList.

    Args:
      key: Feature name.
      encoded_values: Concatenation of `encode_bytes_value` outputs.

    Returns:
      The map entry including its tag within `Features`.
    """
    feature = _length_delimited(_TAG_FIELD_1, encoded_values)
    entry = (_length_delimited(_TAG_FIELD_1, key.encode("utf-8")) +
             _length_delimited(_TAG_FIELD_2, feature))
    return _length_delimited(_TAG_FIELD_1, entry)


def int64_feature_entry(key: str, values: Sequence[int]) -> bytes:
    """Encode one `Features.feature` map entry holding a packed Int64List."""
    packed = b"".join(encode_varint(value) for value in values)
    int64_list = _length_delimited(_TAG_FIELD_1, packed) if values else b""
    feature = _length_delimited(_TAG_FIELD_3, int64_list)
    entry = (_length_delimited(_TAG_FIELD_1, key.encode("utf-8")) +
             _length_delimited(_TAG_FIELD_2, feature))
    return _length_delimited(_TAG_FIELD_1, entry)


def encode_example(entries: Iterable[bytes]) -> bytes:
    """Encode a tf.train.Example from feature map entries.

    Args:
      entries: Outputs of `bytes_feature_entry` and `int64_feature_entry`.
        Their order is kept, which makes the bytes deterministic.
    """
    return _length_delimited(_TAG_FIELD_1, b"".join(entries))


def example_from_dict(features: Dict[str, object]) -> bytes:
    """Encode a tf.train.Example from a dict, with keys in sorted order.

    Values of type int or a list of ints become Int64List; str, bytes or a
    list of those become BytesList. Meant for tests and small outputs; the job
    builds entries directly to reuse shared parts.
    """
    entries = []
    for key in sorted(features):
        value = features[key]
        values = value if isinstance(value, (list, tuple)) else [value]
        if values and all(isinstance(v, int) for v in values):
            entries.append(int64_feature_entry(key, values))
        else:
            encoded = b"".join(
                encode_bytes_value(v.encode("utf-8") if isinstance(v, str) else v)
                for v in values)
            entries.append(bytes_feature_entry(key, encoded))
    return encode_example(entries)


def masked_crc32c(data: bytes) -> int:
    """Return the CRC-32C of `data`, masked as TFRecord files store it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """Frame one serialized proto as a TFRecord."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + data +
            struct.pack("<I", masked_crc32c(data)))


class GzipTFRecordWriter:
    """Writer of one gzip-compressed TFRecord file to an open binary stream.

    The gzip header carries no file name and a zero modification time, so the
    same records always give the same bytes.
    """

    def __init__(self, stream: BinaryIO):
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=stream,
            compresslevel=_GZIP_LEVEL, mtime=0)
        self._pending = []
        self._pending_bytes = 0
        self.records = 0

    def write(self, data: bytes) -> None:
        """Append one serialized proto as a record."""
        self._pending.append(frame_record(data))
        self._pending_bytes += len(data) + 16
        self.records += 1
        # Batches writes because each GzipFile.write call has a fixed cost.
        if self._pending_bytes >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._gzip.write(b"".join(self._pending))
            self._pending = []
            self._pending_bytes = 0

    def close(self) -> None:
        """Write the gzip trailer; the underlying stream stays open."""
        self._flush()
        self._gzip.close()

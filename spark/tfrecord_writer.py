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
# zlib's default level. On this job's output, level 1 compressed twice as
# fast but wrote 13% more bytes, and compression is a small part of the run.
_GZIP_LEVEL = 6


def _encode_varint_slow(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths of ids, lists and examples are nearly always below 2**14, so a
# table of their encodings saves most of the encoding loop.
_SMALL_VARINTS = tuple(_encode_varint_slow(value) for value in range(1 << 14))


def encode_varint(value: int) -> bytes:
    """Encode an int64 as a protobuf varint (negative values take 10 bytes)."""
    if 0 <= value < 16384:
        return _SMALL_VARINTS[value]
    return _encode_varint_slow(value)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    size = len(payload)
    if size < 16384:
        return tag + _SMALL_VARINTS[size] + payload
    return tag + _encode_varint_slow(size) + payload


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
    key_field = _KEY_FIELDS.get(key)
    if key_field is None:
        key_field = _length_delimited(_TAG_FIELD_1, key.encode("utf-8"))
        _KEY_FIELDS[key] = key_field
    feature = _length_delimited(_TAG_FIELD_1, encoded_values)
    entry = key_field + _length_delimited(_TAG_FIELD_2, feature)
    return _length_delimited(_TAG_FIELD_1, entry)


# Encoded map keys by feature name; there are only a handful of names.
_KEY_FIELDS: Dict[str, bytes] = {}


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


def _record_header(size: int) -> bytes:
    length = struct.pack("<Q", size)
    return length + struct.pack("<I", masked_crc32c(length))


# Headers of records below 16 KiB, the size of nearly every example.
_SMALL_HEADERS = tuple(_record_header(size) for size in range(1 << 14))


def frame_record(data: bytes) -> bytes:
    """Frame one serialized proto as a TFRecord."""
    size = len(data)
    header = _SMALL_HEADERS[size] if size < 16384 else _record_header(size)
    return header + data + struct.pack("<I", masked_crc32c(data))


_crc32c = google_crc32c.value
_pack_uint32 = struct.Struct("<I").pack


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
        # Same bytes as frame_record(data), inlined because this runs once
        # per example.
        size = len(data)
        header = _SMALL_HEADERS[size] if size < 16384 else _record_header(size)
        crc = _crc32c(data)
        masked = (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
        self._pending.append(header + data + _pack_uint32(masked))
        self._pending_bytes += size + 16
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

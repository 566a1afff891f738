"""orjson-based JSON helpers and the Faust codecs ``orjson`` and ``state``.

``state`` is the table encoding (customer state, segment windows): versioned and compact.

* **Version 2** (written): the byte ``0x02``, then the value's JSON (orjson) compressed with
  LZ4 (block format, the uncompressed size first).  A customer state is mostly repeated keys, ids
  and timestamps: about 3 x smaller (7.1 KB -> 2.4 KB at the end of the bench mix) for ~8 us of
  compression per write, where zlib level 1 took ~47 us for 1.7 KB (issue 17: the worker encodes
  0.4-0.6 states per event, so zlib cost 12-18 us per event).  With the in-memory table store
  values are encoded only when written to the changelog and decoded only on recovery.
* **Version 1** (read only): the byte ``0x01``, then zlib-compressed JSON, as written before.
* **Version 0** (read only): plain JSON.  A JSON text never starts with a byte below ``0x09``, so
  an existing changelog is read as it is and each key moves to version 2 on its next write
  (compaction then drops the old form): no migration step.

An unknown leading byte is an error (a changelog written by a newer version), never a guess.
"""

from __future__ import annotations

import zlib
from typing import Any

import lz4.block
import orjson
from faust.serializers import codecs

STATE_V1 = b"\x01"  # zlib (read only)
STATE_V2 = b"\x02"  # LZ4 block (written)


def dumps(obj: Any) -> bytes:
    """JSON of ``obj``; non-string dict keys become strings.  ``OPT_NON_STR_KEYS`` costs orjson
    a third more time on every value, so it is asked for only when a value has such keys (the same
    bytes either way)."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


loads = orjson.loads


def encode_state(obj: Any) -> bytes:
    """A table value in the current encoding (version 2)."""
    return STATE_V2 + lz4.block.compress(dumps(obj))


def decode_state(data: bytes) -> Any:
    """A table value written by any version (2: LZ4-compressed JSON; 1: zlib; 0: plain JSON)."""
    head = data[:1]
    if head == STATE_V2:
        return orjson.loads(lz4.block.decompress(data[1:]))
    if head == STATE_V1:
        return orjson.loads(zlib.decompress(data[1:]))
    if head and head[0] < 0x09:  # below any byte a JSON text can start with: a newer version
        raise ValueError(f"table value in an unknown encoding (version byte {head[0]}); upgrade the worker")
    return orjson.loads(data)


class OrjsonCodec(codecs.Codec):
    """Faust codec: Python objects <-> JSON bytes via orjson."""

    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


class StateCodec(codecs.Codec):
    """Faust codec for table values: :func:`encode_state` / :func:`decode_state`."""

    def _dumps(self, obj: Any) -> bytes:
        return encode_state(obj)

    def _loads(self, s: bytes) -> Any:
        return decode_state(s)


def register() -> None:
    """Make ``value_serializer="orjson"`` and ``"state"`` available to Faust (idempotent)."""
    if "orjson" not in codecs.codecs:
        codecs.register("orjson", OrjsonCodec())
    if "state" not in codecs.codecs:
        codecs.register("state", StateCodec())

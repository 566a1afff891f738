"""orjson-based JSON helpers and the Faust codecs ``orjson`` and ``state``.

``state`` is the table encoding (customer state, segment windows): versioned and compact.

* **Version 1** (written): the byte ``0x01``, then the value's JSON (orjson) compressed with
  zlib at level 1.  A customer state is mostly repeated keys, ids and timestamps: about 3.6 x
  smaller (3.5 KB -> 1.0 KB on the bench mix) for ~70 us per write.  With the in-memory table
  store values are encoded only when written to the changelog and decoded only on recovery.
* **Version 0** (read only): plain JSON, as written before.  A JSON text never starts with
  ``0x01``, so an existing changelog is read as it is and each key moves to version 1 on its
  next write (compaction then drops the old form): no migration step.

An unknown leading byte is an error (a changelog written by a newer version), never a guess.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from faust.serializers import codecs

STATE_V1 = b"\x01"
ZLIB_LEVEL = 1  # level 6 saves another 9 % for 40 % more time per write


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


loads = orjson.loads


def encode_state(obj: Any) -> bytes:
    """A table value in the current encoding (version 1)."""
    return STATE_V1 + zlib.compress(dumps(obj), ZLIB_LEVEL)


def decode_state(data: bytes) -> Any:
    """A table value written by any version (1: compressed JSON; 0: plain JSON)."""
    head = data[:1]
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

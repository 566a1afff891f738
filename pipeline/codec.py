"""orjson-based JSON helpers and a Faust codec named ``orjson``."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


loads = orjson.loads


class OrjsonCodec(codecs.Codec):
    """Faust codec: Python objects <-> JSON bytes via orjson."""

    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    """Make ``value_serializer="orjson"`` available to Faust (idempotent)."""
    if "orjson" not in codecs.codecs:
        codecs.register("orjson", OrjsonCodec())

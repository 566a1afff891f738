"""Structured (JSON lines) logging, quiet by default.

Records carry only event coordinates (topic, partition, offset, codes) — never
texts, customer ids or other personal data.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def logging_config(level: str = "WARNING", fmt: str = "json") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: root at ``level``, noisy libraries capped."""
    formatter = (
        {"()": "pipeline.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"}
    )
    quiet = "WARNING" if level in ("DEBUG", "INFO") else level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "aiokafka": {"level": quiet},
            "kafka": {"level": quiet},
            # kafka-python 3 warns whenever one of its I/O tasks held its own event loop > 100 ms;
            # in a busy worker (GIL shared with Faust) that is every few seconds and says nothing
            # an operator can act on
            "kafka.net.selector": {"level": "ERROR"},
            "faust": {"level": level},
            "mode": {"level": level},
        },
    }


def setup(level: str = "WARNING", fmt: str = "json") -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, fmt))

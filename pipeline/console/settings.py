"""The console's settings, from environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from ..cases.inbox import DEFAULT_MAX_ALERTS
from ..cases.lifecycle import RESOLUTION_CODES


@dataclass(frozen=True)
class ConsoleSettings:
    host: str = "127.0.0.1"  # PIPELINE_CONSOLE_HOST
    port: int = 6070  # PIPELINE_CONSOLE_PORT
    token: str | None = None  # PIPELINE_CONSOLE_TOKEN: one operator whose password is this token
    users_file: str | None = None  # PIPELINE_CONSOLE_USERS_FILE
    secret: str | None = None  # PIPELINE_CONSOLE_SECRET: signs session cookies (default: random per process)
    worker_url: str = "http://127.0.0.1:6066"  # PIPELINE_CONSOLE_WORKER_URL: any worker (queries are routed)
    worker_token: str | None = None  # PIPELINE_WEB_TOKEN of the workers
    max_alerts: int = DEFAULT_MAX_ALERTS  # PIPELINE_CONSOLE_MAX_ALERTS
    resolution_codes: tuple[str, ...] = RESOLUTION_CODES  # PIPELINE_CONSOLE_RESOLUTION_CODES (comma-separated)
    refresh_seconds: float = 3.0  # PIPELINE_CONSOLE_REFRESH_SECONDS: the inbox's live update

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ConsoleSettings":
        env = os.environ if env is None else env
        d = cls()
        codes = tuple(c.strip() for c in (env.get("PIPELINE_CONSOLE_RESOLUTION_CODES") or "").split(",") if c.strip())
        return cls(host=env.get("PIPELINE_CONSOLE_HOST") or d.host,
                   port=int(env.get("PIPELINE_CONSOLE_PORT") or d.port),
                   token=env.get("PIPELINE_CONSOLE_TOKEN") or None,
                   users_file=env.get("PIPELINE_CONSOLE_USERS_FILE") or None,
                   secret=env.get("PIPELINE_CONSOLE_SECRET") or None,
                   worker_url=(env.get("PIPELINE_CONSOLE_WORKER_URL") or d.worker_url).rstrip("/"),
                   worker_token=env.get("PIPELINE_WEB_TOKEN") or None,
                   max_alerts=int(env.get("PIPELINE_CONSOLE_MAX_ALERTS") or d.max_alerts),
                   resolution_codes=codes or d.resolution_codes,
                   refresh_seconds=float(env.get("PIPELINE_CONSOLE_REFRESH_SECONDS") or d.refresh_seconds))

"""The stages' settings: one typed tree, built once at the edge, each stage handed its own part.

:class:`~pipeline.config.Settings` holds what the Kafka edge needs (brokers, topics, partitions,
clocks, bounds).  :class:`StageSettings` holds what the pure stages need, each part the stage's own
typed config, read from the environment and the files it names exactly once, by
:func:`load_stage_settings`: :func:`pipeline.app.build` calls it and passes the parts down
(:class:`~pipeline.process.Processor`, the stage drivers).  No stage reads ``os.environ`` itself.
A bad value or file fails here, at start-up, with its reason.  Variables and defaults:
docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .aggregate.alerts import Playbook as PainPlaybook, load_playbook as load_pain_playbook
from .aggregate.partials import min_confidence_from_env
from .aggregate.state import grace_from_env, retention_from_env
from .aggregate.surge import SurgeConfig
from .aggregate.windows import WindowSpec, windows_from_env
from .churn.alerts import ChurnPolicy, Playbook as ChurnPlaybook, load_playbook as load_churn_playbook
from .churn.score import Weights, load_weights
from .commitments.model import CommitmentConfig
from .commitments.playbook import Playbook as CommitmentPlaybook, load_playbook as load_commitment_playbook
from .core.redact import Redactor
from .retry import RetryPolicy


@dataclass(frozen=True)
class CommitmentSettings:
    """Deadlines, warnings and the suggested actions of commitment alerts."""

    config: CommitmentConfig
    playbook: CommitmentPlaybook


@dataclass(frozen=True)
class ChurnSettings:
    """Risk-score weights, when an alert fires, and the suggested actions of churn alerts."""

    weights: Weights
    policy: ChurnPolicy
    playbook: ChurnPlaybook


@dataclass(frozen=True)
class AggregateSettings:
    """Windows, the pre-aggregation threshold, the watermark, surge detection and its actions."""

    windows: tuple[WindowSpec, ...]
    min_confidence: float
    grace_seconds: float
    retention_windows: int
    surge: SurgeConfig
    playbook: PainPlaybook


@dataclass(frozen=True)
class StageSettings:
    """Every stage's own settings (see the module docstring)."""

    commitments: CommitmentSettings
    churn: ChurnSettings
    aggregate: AggregateSettings
    redactor: Redactor  # personal data masked on every output
    retry: RetryPolicy  # bounded retries of a record's processing


def load_stage_settings(env: Mapping[str, str]) -> StageSettings:
    """Read every stage's settings from ``env`` (and the files it names); raises ``ValueError`` (or
    ``OSError`` for a missing file) with the reason on a bad value."""
    return StageSettings(
        commitments=CommitmentSettings(CommitmentConfig.from_env(env), load_commitment_playbook(None, env)),
        churn=ChurnSettings(load_weights(None, env), ChurnPolicy.from_env(env), load_churn_playbook(None, env)),
        aggregate=AggregateSettings(
            windows=tuple(windows_from_env(env)), min_confidence=min_confidence_from_env(env),
            grace_seconds=grace_from_env(env), retention_windows=retention_from_env(env),
            surge=SurgeConfig.from_env(env), playbook=load_pain_playbook(None, env)),
        redactor=Redactor.from_env(env),
        retry=RetryPolicy.from_env(env),
    )

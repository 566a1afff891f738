"""Commitment tracking (pure logic): model, tracker, alerts, playbook.

See :mod:`pipeline.commitments.model` for kinds, statuses and configuration,
:mod:`pipeline.commitments.tracker` for the state functions and
:mod:`pipeline.commitments.alerts` for the alert contract and severity rule.
"""

from .alerts import alerts_for
from .model import KINDS, CommitmentConfig, Transition
from .playbook import Playbook, load_playbook
from .tracker import advance, apply_event, due_soonest, new_state

__all__ = [
    "KINDS",
    "CommitmentConfig",
    "Playbook",
    "Transition",
    "advance",
    "alerts_for",
    "apply_event",
    "due_soonest",
    "load_playbook",
    "new_state",
]

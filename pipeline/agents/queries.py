"""What the web layer asks of the agents' state (issue 18): a customer, as of its last batch."""

from __future__ import annotations

from typing import Any, Callable

from ..config import Settings
from ..core.keys import partition_of
from ..drivers.stage1 import Stage1
from ..outputs.customer_view import ViewConfig, commitment_view, customer_view
from ..stage_settings import StageSettings


def customer_lookup(driver: Stage1, customers: Any, settings: Settings,
                    stages: StageSettings) -> Callable[..., dict[str, Any] | None]:
    """``GET /customers/<id>[/commitments/<commitment_id>]`` on the worker that owns the customer: its
    state as of the last batch (pending writes, then a commit in flight, then the table) at its
    partition's clock;
    ``None`` when unknown."""
    cfg = ViewConfig(settings.segment, stages.churn.weights)

    def lookup(customer_id: str, commitment_id: str | None = None) -> dict[str, Any] | None:
        state = driver.state(customer_id)
        if state is None:
            return None
        if commitment_id is not None:
            return commitment_view(customer_id, state, commitment_id)
        clock = driver.clocks.value(partition_of(customer_id, settings.partitions))
        return customer_view(customer_id, state, clock, cfg)

    return lookup

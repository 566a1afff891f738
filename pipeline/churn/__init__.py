"""Explainable churn risk (pure logic, no Faust/Kafka).

* :mod:`.state` — per-customer churn state, updated by events and commitment transitions;
* :mod:`.score` — score 0..100 from configurable factors with time decay (``default_weights.yaml``);
* :mod:`.alerts` — alert policy (threshold, hysteresis, cool-down, severity) and the playbook;
* :mod:`.snapshot` — the ``risk`` object of enriched events.

Import from the submodules (``from pipeline.churn.score import score``); the package
namespace stays empty so that ``pipeline.churn.score`` always names the module.
"""

"""What operators see: one clear line for an unreachable Kafka or a bad file, start-up warnings, quiet logs."""

from __future__ import annotations

import pytest
from kafka import errors as kafka_errors

from pipeline import cli


@pytest.mark.parametrize("name", ["KafkaTimeoutError", "KafkaConnectionError"])
def test_unreachable_kafka_is_one_line(monkeypatch, capsys, name):
    exc_type = getattr(kafka_errors, name)

    def boom(args):  # noqa: ANN001
        raise exc_type("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(cli, "cmd_topics", boom)
    assert cli.main(["topics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach Kafka") and "127.0.0.1:1" in err
    assert "KAFKA_BOOTSTRAP_SERVERS" in err and "Traceback" not in err


def test_other_errors_are_not_swallowed(monkeypatch):
    def boom(args):  # noqa: ANN001
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_topics", boom)
    with pytest.raises(RuntimeError):
        cli.main(["topics"])


def test_exactly_once_is_refused_at_start_with_one_line(monkeypatch, capsys):
    """Faust's transactions gave wrong counts after kill -9 (docs/reliability.md): refused, not warned."""
    from pipeline.config import ConfigError, load_settings

    assert load_settings({}).processing_guarantee == "at_least_once"
    with pytest.raises(ConfigError, match="refused"):
        load_settings({"PIPELINE_PROCESSING_GUARANTEE": "exactly_once"})
    monkeypatch.setenv("PIPELINE_PROCESSING_GUARANTEE", "exactly_once")
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: PIPELINE_PROCESSING_GUARANTEE=exactly_once is refused") and "\n" not in err


def test_kafka_python_event_loop_chatter_is_capped():
    from pipeline.logs import logging_config

    cfg = logging_config("WARNING")
    assert cfg["loggers"]["kafka.net.selector"]["level"] == "ERROR"
    assert cfg["loggers"]["kafka"]["level"] == "WARNING"  # real kafka-python warnings still show


def test_a_crashed_worker_is_reported_at_once_not_after_the_timeout(tmp_path):
    import subprocess
    import sys

    from pipeline import runtime
    from pipeline.config import load_settings

    log = tmp_path / "w.log"
    log.write_text("...\nKeyError: TopicPartition(topic='x', partition=3)\n")
    w = runtime.WorkerProcess(load_settings({}), 0, log)
    w.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    w.proc.wait(30)
    w.meant_to_run = True
    runtime._STARTED.add(w)
    try:
        reason = runtime.dead_worker()
        assert reason is not None and "exited unexpectedly with 3" in reason and "KeyError" in reason
        with pytest.raises(RuntimeError, match="exited unexpectedly"):
            runtime.wait_for_group(load_settings({}), "g", ["t"], timeout=5)  # before any Kafka call
        w.stop()  # a deliberate stop is not a crash
        assert runtime.dead_worker() is None
    finally:
        runtime._STARTED.discard(w)

"""LocalKafka helpers that need no broker."""

from __future__ import annotations


def test_local_kafka_cluster_ids_never_start_with_a_dash():
    from pipeline.kafka_local import _cluster_id

    ids = [_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_single_broker_properties_unchanged():
    """``LocalKafka()`` (the test session's broker) stays a one-node quorum with replication 1."""
    from pathlib import Path

    from pipeline.kafka_local import LocalKafka

    k = LocalKafka("4.1.1", Path("/nonexistent"), port=9100, controller_port=9101)
    p = _props(k._properties(Path("/data")))
    assert p["node.id"] == "1"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9101"
    assert p["offsets.topic.replication.factor"] == "1"
    assert p["transaction.state.log.replication.factor"] == "1"
    assert "min.insync.replicas" not in p and "default.replication.factor" not in p
    assert k.cluster_id is None


def test_cluster_node_config():
    import pytest

    from pipeline.kafka_local import cluster_node_config

    cfg = cluster_node_config(2, [9001, 9002, 9003])
    assert cfg["node.id"] == "2"
    assert cfg["controller.quorum.voters"] == "1@127.0.0.1:9001,2@127.0.0.1:9002,3@127.0.0.1:9003"
    assert cfg["default.replication.factor"] == "3"
    assert cfg["min.insync.replicas"] == "2"
    assert cfg["offsets.topic.replication.factor"] == "3"
    assert cfg["transaction.state.log.replication.factor"] == "3"
    assert cfg["transaction.state.log.min.isr"] == "2"
    assert cfg["unclean.leader.election.enable"] == "false"
    for bad in [dict(node_id=0, controller_ports=[1, 2, 3]), dict(node_id=4, controller_ports=[1, 2, 3]),
                dict(node_id=1, controller_ports=[1, 2], replication_factor=3),
                dict(node_id=1, controller_ports=[1, 2, 3], min_insync_replicas=4)]:
        with pytest.raises(ValueError):
            cluster_node_config(**bad)


def test_cluster_nodes_share_id_and_quorum(tmp_path):
    """Three combined broker+controller nodes: distinct ports and node ids, one cluster id, one voter set."""
    from pipeline.kafka_local import LocalKafkaCluster

    c = LocalKafkaCluster("4.1.1", tmp_path / "cache", workdir=tmp_path / "cluster", heap="256m",
                          extra_config={"log.retention.ms": "60000"})
    nodes = c.configure()
    assert c.configure() is nodes and len(nodes) == 3
    props = [_props(n._properties(n.workdir / "data")) for n in nodes]
    ports = {n.port for n in nodes} | {n.controller_port for n in nodes}
    assert len(ports) == 6
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    voters = {p["controller.quorum.voters"] for p in props}
    assert voters == {",".join(f"{i}@127.0.0.1:{n.controller_port}" for i, n in enumerate(nodes, start=1))}
    assert {n.cluster_id for n in nodes} == {c.cluster_id} and len(c.cluster_id) == 22
    assert all(p["process.roles"] == "broker,controller" for p in props)
    assert all(p["min.insync.replicas"] == "2" and p["default.replication.factor"] == "3" for p in props)
    assert all(p["log.retention.ms"] == "60000" for p in props)
    assert all(p["listeners"] == f"PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}"
               for p, n in zip(props, nodes))
    assert len({p["log.dirs"] for p in props}) == 3
    assert all(n.heap == "256m" for n in nodes)
    assert c.bootstrap == ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    assert c.node(2) is nodes[1]

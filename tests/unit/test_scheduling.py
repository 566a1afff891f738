from pipeline.scheduling import DueIndex


def test_pop_due_in_time_order_and_once():
    idx = DueIndex()
    idx.set(0, "a", 30.0)
    idx.set(0, "b", 10.0)
    idx.set(1, "c", 5.0)
    assert idx.pop_due(0, 9.0) == []
    assert idx.pop_due(0, 30.0) == ["b", "a"]
    assert idx.pop_due(0, 100.0) == []
    assert idx.pop_due(1, 5.0) == ["c"]


def test_reschedule_and_clear_use_latest_value():
    idx = DueIndex()
    idx.set(0, "a", 10.0)
    idx.set(0, "a", 50.0)  # moved later: the stale heap entry is ignored
    assert idx.pop_due(0, 20.0) == []
    assert idx.next_due(0) == 50.0
    idx.set(0, "a", None)
    assert idx.pop_due(0, 100.0) == [] and idx.next_due(0) is None and len(idx) == 0


def test_rebuild_and_drop_partition():
    idx = DueIndex()
    idx.rebuild(2, [("x", 1.0), ("y", None), ("z", 3.0)])
    assert idx.known(2) and len(idx) == 2
    idx.drop(2)
    assert not idx.known(2) and idx.pop_due(2, 10.0) == []

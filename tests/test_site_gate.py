"""The deployment's gates (`Site.gate`): a Galera joiner's state transfer never runs beside
a schema change, and a waiting joiner is not starved by the schema changes that follow."""

from __future__ import annotations

import threading
import time

from hastack.deploy.site import Gate


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_an_exclusive_holder_waits_for_the_shared_ones_and_runs_alone() -> None:
    gate, events, lock = Gate(), [], threading.Lock()
    in_shared, release_shared = threading.Event(), threading.Event()

    def note(what: str) -> None:
        with lock:
            events.append(what)

    def schema_change() -> None:
        with gate.shared():
            note("ddl starts")
            in_shared.set()
            release_shared.wait(5)
            note("ddl ends")

    def state_transfer() -> None:
        with gate.exclusive():
            note("sst")

    ddl = _in_thread(schema_change)
    assert in_shared.wait(5)
    sst = _in_thread(state_transfer)
    time.sleep(0.2)
    assert events == ["ddl starts"]
    release_shared.set()
    ddl.join(5)
    sst.join(5)
    assert events == ["ddl starts", "ddl ends", "sst"]


def test_a_waiting_exclusive_holder_goes_before_new_shared_ones() -> None:
    gate, events = Gate(), []
    first_in, release_first = threading.Event(), threading.Event()

    def first_ddl() -> None:
        with gate.shared():
            first_in.set()
            release_first.wait(5)
        events.append("first ddl")

    def sst() -> None:
        with gate.exclusive():
            events.append("sst")

    def later_ddl() -> None:
        with gate.shared():
            events.append("later ddl")

    threads = [_in_thread(first_ddl)]
    assert first_in.wait(5)
    threads.append(_in_thread(sst))
    time.sleep(0.2)
    threads.append(_in_thread(later_ddl))
    time.sleep(0.2)
    assert events == []
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert events.index("sst") < events.index("later ddl")


def test_shared_holders_run_together() -> None:
    gate, both_in = Gate(), threading.Barrier(2, timeout=5)

    def ddl() -> None:
        with gate.shared():
            both_in.wait()

    threads = [_in_thread(ddl), _in_thread(ddl)]
    for thread in threads:
        thread.join(6)
    assert not both_in.broken

"""Runs found by parent and name, and ended or read by id."""

from __future__ import annotations

from registry.runs import end_run, find_child_run, run_status
from registry.tracking import client, experiment_id, tracked_run


def test_a_child_run_is_found_by_its_parent_and_name() -> None:
    # given a session run with two children, and a run of the same name under another parent
    with tracked_run("runs-test", "session") as parent:
        with tracked_run("runs-test", "trial0", parent_run_id=parent) as wanted:
            pass
        with tracked_run("runs-test", "trial1", parent_run_id=parent):
            pass
    with tracked_run("runs-test", "trial0"):
        pass

    assert find_child_run("runs-test", parent, "trial0") == wanted
    assert find_child_run("runs-test", parent, "trial9") is None


def test_a_run_ends_with_the_status_asked_for() -> None:
    run_id = client().create_run(experiment_id("runs-test"), run_name="killed").info.run_id
    assert run_status(run_id) == "RUNNING"

    end_run(run_id, "KILLED")

    assert run_status(run_id) == "KILLED"


def test_an_unknown_run_has_no_status() -> None:
    assert run_status("0" * 32) is None

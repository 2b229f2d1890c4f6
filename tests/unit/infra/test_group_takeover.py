"""Which predecessors a restarted service removes from its groups: only surely dead ones."""

from __future__ import annotations

import os

from infra.group_takeover import dead_members, left_alone, process_running

ME = "host-a:4242"
MEMBERS = {"members": {"decider": "aiokafka-1"}}


def test_a_predecessor_whose_process_is_gone_is_removed() -> None:
    found = dead_members([("host-a:100", MEMBERS)], ME, running=lambda pid: False)
    assert found == {"host-a:100": [("decider", "aiokafka-1")]}


def test_a_predecessor_whose_pid_runs_is_left_to_its_session() -> None:
    assert dead_members([("host-a:100", MEMBERS)], ME, running=lambda pid: True) == {}


def test_a_predecessor_on_another_host_is_left_to_its_session() -> None:
    assert dead_members([("host-b:100", MEMBERS)], ME, running=lambda pid: False) == {}


def test_a_predecessor_under_this_very_pid_is_dead() -> None:
    """A restarted container's first process has the pid its predecessor had."""
    found = dead_members([(ME, MEMBERS)], ME, running=lambda pid: True)
    assert found == {ME: [("decider", "aiokafka-1")]}


def test_every_group_of_a_dead_projector_is_removed_and_unjoined_ones_skipped() -> None:
    details = {"members": {"projector": "m-1", "projector-metrics": "m-2", "projector-dl": ""}}
    found = dead_members([("host-a:7", details)], ME, running=lambda pid: False)
    assert found == {"host-a:7": [("projector", "m-1"), ("projector-metrics", "m-2")]}


def test_a_heartbeat_without_members_is_forgotten_without_a_leave() -> None:
    """Written before the member joined, or by a release without memberships."""
    found = dead_members([("host-a:7", {"partitions": [1]})], ME, running=lambda pid: False)
    assert found == {"host-a:7": []}


def test_process_running_tells_this_process_from_a_finished_one() -> None:
    assert process_running(os.getpid())
    assert not process_running(2**22 + 12345)  # above Linux's largest pid


def test_a_dead_member_is_removed_only_from_a_stable_group_it_is_in() -> None:
    """The embedded broker, asked to remove the leader of an unfinished rebalance, never
    forms the group again: mid-rebalance the member is left to its session."""
    assert left_alone("m-1", "Stable", {"m-1", "m-2"}) is None
    assert "CompletingRebalance" in str(left_alone("m-1", "CompletingRebalance", {"m-1"}))
    assert "no longer" in str(left_alone("m-1", "Stable", {"m-2"}))

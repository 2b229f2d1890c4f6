"""A service restarted after a crash takes its partitions back at once.

A member killed with SIGKILL never leaves its consumer groups: the broker keeps it until
its session expires, and holds the restarted service's join until then (18 s after a
kill -9 of the decider on the embedded broker, whose join also waits half a session:
missions stalled that long). Every member writes its group member ids into its heartbeat
(infra/heartbeat.py); at start, a service finds the heartbeats of its own predecessors
that are surely dead — same host, a process id no longer running, or its own (a restarted
container's first process) — and sends LeaveGroup for their member ids before it joins,
when their group is Stable (see `_described`); a group mid-rebalance is left alone.

Only sure deaths count: a predecessor on another host, or whose pid now belongs to a
running process, is left to its session timeout as before. Removing a member that was
only stalled would be safe too (it is what its session expiring does), but is not done.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
from aiokafka.client import AIOKafkaClient, ConnectionGroup, CoordinationType
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.group import LeaveGroupRequest
from loguru import logger

from infra.heartbeat import instance_name

TAKEOVER_WAIT_S = 5.0
"""The most a start spends removing dead predecessors (the broker may be slow to answer):
past it the service joins anyway and waits for their sessions to expire, as before."""


def process_running(pid: int) -> bool:
    """Whether a process with `pid` exists on this host (not necessarily ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


Member = tuple[str, str]
"""(consumer group id, member id)"""


def dead_members(
    heartbeats: Iterable[tuple[str, dict[str, Any]]],
    me: str,
    running: Callable[[int], bool],
) -> dict[str, list[Member]]:
    """The group members of each heartbeat (instance, details) whose process is surely
    gone, by instance; `me` is this process's instance name (host:pid)."""
    host, _, _ = me.rpartition(":")
    dead: dict[str, list[Member]] = {}
    for instance, details in heartbeats:
        their_host, _, pid = instance.rpartition(":")
        if their_host != host or not pid.isdigit():
            continue
        if instance != me and running(int(pid)):
            continue
        members = details.get("members")
        listed = members.items() if isinstance(members, dict) else ()
        dead[instance] = [(str(group), str(id_)) for group, id_ in listed if id_]
    return dead


async def remove_dead_predecessors(
    pool: asyncpg.Pool, service: str, options: dict[str, Any]
) -> None:
    """Send LeaveGroup for the member ids of `service`'s dead predecessors on this host and
    forget their heartbeats. Best effort, within TAKEOVER_WAIT_S; call before joining."""
    try:
        await asyncio.wait_for(_remove(pool, service, options), TAKEOVER_WAIT_S)
    except (
        TimeoutError,
        KafkaError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as error:
        logger.warning(
            "{}: dead predecessors not removed from their groups ({}: {}); joining anyway",
            service,
            type(error).__name__,
            error,
        )


async def _remove(pool: asyncpg.Pool, service: str, options: dict[str, Any]) -> None:
    rows = await pool.fetch(
        "SELECT instance, details FROM service_heartbeats WHERE service = $1 AND instance LIKE $2",
        service,
        f"{socket.gethostname()}:%",
    )
    dead = dead_members(
        ((row["instance"], json.loads(row["details"])) for row in rows),
        instance_name(),
        process_running,
    )
    if not dead:
        return
    members = [member for listed in dead.values() for member in listed]
    if members:
        await _leave(options, members)
    await pool.execute(
        "DELETE FROM service_heartbeats WHERE service = $1 AND instance = ANY($2::text[])",
        service,
        list(dead),
    )


async def _leave(options: dict[str, Any], members: list[Member]) -> None:
    client = AIOKafkaClient(**options)
    await client.bootstrap()
    try:
        for group, member in members:
            node = await client.coordinator_lookup(CoordinationType.GROUP, group)
            state, current = await _described(client, node, group)
            kept = left_alone(member, state, current)
            if kept is not None:
                level = "DEBUG" if member not in current else "INFO"
                logger.log(level, "dead predecessor {} of group {}: {}", member, group, kept)
                continue
            answer = await client.send(
                node, LeaveGroupRequest(group, member), group=ConnectionGroup.COORDINATION
            )
            if answer.error_code == 0:
                logger.info(
                    "removed dead predecessor {} from group {}: its partitions move now,"
                    " not when its session expires",
                    member,
                    group,
                )
    finally:
        await client.close()


def left_alone(member: str, state: str, current: set[str]) -> str | None:
    """Why `member` is not removed from a group in `state` whose members are `current`,
    or None to remove it. Only from a Stable group: see `_described`."""
    if member not in current:  # it left, its session expired, or it was another broker's
        return "no longer in the group"
    if state != "Stable":
        return f"left to its session: the group is {state}, not Stable"
    return None


async def _described(client: AIOKafkaClient, node: int, group: str) -> tuple[str, set[str]]:
    """(state, member ids) of `group`. A member is removed only from a Stable group: the
    embedded broker, asked to remove the leader of a rebalance still in progress, keeps
    waiting for that leader's assignment, and the group never forms again (seen in the
    SIGKILL drill: three kills seconds apart, the last restart stuck in SyncGroup)."""
    answer = await client.send(
        node, DescribeGroupsRequest([group]), group=ConnectionGroup.COORDINATION
    )
    _error, _group, state, _protocol_type, _protocol, members, *_ = answer.groups[0]
    return str(state), {str(member[0]) for member in members}

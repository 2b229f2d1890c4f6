"""The stack's processes: replicas of each consumer service, each colony on its own port."""

from __future__ import annotations

from infra.stack import Supervisor

ENV = {
    "PORT": "8100",
    "OPERATOR_SIGNING_KEY": "signing",
    "ROOT_API_KEY": "colony-key",
    "VELOCITY_API_KEYS": "keys",
}


def test_replicas_of_each_consumer_service_with_one_root() -> None:
    supervisor = Supervisor.for_ports(ENV, 8000, [8100, 8101], None)
    names = [service.name for service in supervisor.services]
    assert names == [
        *("decider", "projector", "colony"),
        *("decider-2", "projector-2", "colony-2"),
        "root",
    ]
    assert [s.role for s in supervisor.services].count("colony") == 2


def test_each_colony_replica_listens_on_its_own_port_and_gets_only_its_secrets() -> None:
    supervisor = Supervisor.for_ports(ENV, 8000, [8100, 8101], None)
    first, second = supervisor.service("colony"), supervisor.service("colony-2")
    assert first.environment(ENV)["PORT"] == "8100" and first.url == "http://127.0.0.1:8100"
    assert second.environment(ENV)["PORT"] == "8101" and second.url == "http://127.0.0.1:8101"
    assert "OPERATOR_SIGNING_KEY" not in second.environment(ENV)
    assert second.environment(ENV)["ROOT_API_KEY"] == "colony-key"
    assert "ROOT_API_KEY" not in supervisor.service("decider-2").environment(ENV)

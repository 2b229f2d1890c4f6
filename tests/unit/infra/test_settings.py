"""Settings: each bad value stops the process with one line naming the variable, exit 2."""

from __future__ import annotations

import pytest

from colony_consumers.settings import ColonySettings
from gateway.keys import Caller, keys_of_role, parse_api_keys
from gateway.settings import RootSettings
from infra.config import CommonSettings, load_settings
from infra.stack import StackSettings
from ledger.authority import LOCAL_VERIFY_KEYS, new_key_pair
from ledger.settings import DeciderSettings

REAL_INFRA = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "DATABASE_URL": "postgresql://db/x"}
STAGING_ROOT = {
    **REAL_INFRA,
    "VELOCITY_ENV": "staging",
    "COLONY_SERVICE_BASE_URL": "http://colony.internal:8100",
    "COLONY_SERVICE_API_KEY": "s3cret-colony",
    "VELOCITY_API_KEYS": "service:intake:svc-key,colony:colony:col-key,operator:alice:op-key,"
    "auditor:auditor:aud-key",
    "OPERATOR_SIGNING_KEY": new_key_pair("staging-1")[0],
    "OPERATOR_SIGNING_KEY_ID": "staging-1",
}
STAGING_COLONY = {
    **REAL_INFRA,
    "VELOCITY_ENV": "staging",
    "ROOT_API_BASE_URL": "http://root.internal:8000",
    "ROOT_API_KEY": "col-key",
    "COLONY_SERVICE_API_KEY": "s3cret-colony",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        list(CommonSettings.model_fields)
        + list(RootSettings.model_fields)
        + list(ColonySettings.model_fields)
        + list(DeciderSettings.model_fields)
        + list(StackSettings.model_fields)
    ):
        monkeypatch.delenv(name, raising=False)


def refusal(
    model: type[CommonSettings],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """The one stderr line with which loading `model` under `env` stops the process."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(model)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_local_defaults_start_without_any_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    root = load_settings(RootSettings)
    colony = load_settings(ColonySettings)
    assert root.VELOCITY_ENV == "local"
    assert root.ROOT_PORT == 8000
    assert root.COLONY_ENABLED is True
    assert {caller.role for caller in root.api_keys.values()} == {
        "service",
        "colony",
        "operator",
        "auditor",
    }
    assert colony.ROOT_API_KEY.get_secret_value() in keys_of_role(
        root.VELOCITY_API_KEYS.get_secret_value(), "colony"
    )
    assert colony.PORT == 8100
    assert colony.TASK_TIMEOUT_MS <= colony.MISSION_TIMEOUT_MS


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"COLONY_TIMEOUT_MS": "soon"}, "COLONY_TIMEOUT_MS"),
        ({"COLONY_TIMEOUT_MS": "0"}, "COLONY_TIMEOUT_MS"),
        ({"COLONY_ENABLED": "maybe"}, "COLONY_ENABLED"),
        ({"COLONY_SERVICE_BASE_URL": "not a url"}, "COLONY_SERVICE_BASE_URL"),
        ({"COLONY_DEFAULT_TIME_BUDGET_MS": "-5"}, "COLONY_DEFAULT_TIME_BUDGET_MS"),
        ({"COLONY_DEFAULT_TOKEN_BUDGET": "lots"}, "COLONY_DEFAULT_TOKEN_BUDGET"),
        ({"ROOT_PORT": "70000"}, "ROOT_PORT"),
        ({"VELOCITY_ENV": "prod"}, "VELOCITY_ENV"),
        ({"VELOCITY_API_KEYS": "admin:abc"}, "VELOCITY_API_KEYS"),
        ({"VELOCITY_API_KEYS": "operator"}, "VELOCITY_API_KEYS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_FETCH_WAIT_MS": "0"}, "KAFKA_FETCH_WAIT_MS"),
        (
            {"KAFKA_FETCH_WAIT_MS": "5000", "KAFKA_REQUEST_TIMEOUT_MS": "5000"},
            "KAFKA_FETCH_WAIT_MS",
        ),
    ],
)
def test_bad_root_value_names_the_variable(
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = refusal(RootSettings, env, monkeypatch, capsys)
    assert line.startswith("velocity: invalid configuration: ")
    assert named in line


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"ROOT_API_BASE_URL": "ftp//x"}, "ROOT_API_BASE_URL"),
        ({"MAX_CONCURRENT_MISSIONS": "0"}, "MAX_CONCURRENT_MISSIONS"),
        ({"MAX_WORKERS_PER_MISSION": "many"}, "MAX_WORKERS_PER_MISSION"),
        ({"MISSION_TIMEOUT_MS": "-1"}, "MISSION_TIMEOUT_MS"),
        ({"TASK_TIMEOUT_MS": "0"}, "TASK_TIMEOUT_MS"),
        ({"TASK_TIMEOUT_MS": "900000", "MISSION_TIMEOUT_MS": "1000"}, "TASK_TIMEOUT_MS"),
        ({"DEFAULT_MODEL_ROUTE": ""}, "DEFAULT_MODEL_ROUTE"),
        ({"RESEARCH_PROVIDER": ""}, "RESEARCH_PROVIDER"),
        ({"BROWSER_PROVIDER": ""}, "BROWSER_PROVIDER"),
    ],
)
def test_bad_colony_value_names_the_variable(
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert named in refusal(ColonySettings, env, monkeypatch, capsys)


@pytest.mark.parametrize(
    "missing",
    [
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "COLONY_SERVICE_BASE_URL",
        "COLONY_SERVICE_API_KEY",
        "VELOCITY_API_KEYS",
        "OPERATOR_SIGNING_KEY",
        "OPERATOR_SIGNING_KEY_ID",
    ],
)
def test_staging_root_refuses_to_start_without(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: v for k, v in STAGING_ROOT.items() if k != missing}
    line = refusal(RootSettings, env, monkeypatch, capsys)
    assert missing in line and "staging" in line


@pytest.mark.parametrize(
    "missing", ["ROOT_API_BASE_URL", "ROOT_API_KEY", "COLONY_SERVICE_API_KEY", "DATABASE_URL"]
)
def test_production_colony_refuses_to_start_without(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: v for k, v in STAGING_COLONY.items() if k != missing} | {"VELOCITY_ENV": "production"}
    line = refusal(ColonySettings, env, monkeypatch, capsys)
    assert missing in line and "production" in line


def test_staging_refuses_the_documented_local_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = STAGING_ROOT | {"VELOCITY_API_KEYS": "operator:local-operator-key"}
    assert "VELOCITY_API_KEYS" in refusal(RootSettings, env, monkeypatch, capsys)


def test_complete_staging_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STAGING_ROOT.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(RootSettings)
    assert settings.api_keys == {
        "svc-key": Caller("service", "intake"),
        "col-key": Caller("colony", "colony"),
        "op-key": Caller("operator", "alice"),
        "aud-key": Caller("auditor", "auditor"),
    }
    assert settings.log_format == "json"


def test_secret_values_never_appear_in_the_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = STAGING_ROOT | {"VELOCITY_API_KEYS": "admin:topsecretvalue"}
    line = refusal(RootSettings, env, monkeypatch, capsys)
    assert "topsecretvalue" not in line


def test_a_named_key_records_the_name_and_an_unnamed_one_a_stable_hash() -> None:
    forward = parse_api_keys("operator:alice:k-one,operator:k-two")
    backward = parse_api_keys("operator:k-two,operator:alice:k-one")
    assert forward["k-one"].label == "operator:alice"
    assert forward["k-two"] == backward["k-two"]
    assert forward["k-two"].name.startswith("key-") and "k-two" not in forward["k-two"].name


def test_a_signing_key_that_is_not_a_key_is_named_but_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(RootSettings, {"OPERATOR_SIGNING_KEY": "nonsense-secret"}, monkeypatch, capsys)
    assert "OPERATOR_SIGNING_KEY" in line and "nonsense-secret" not in line


def test_staging_decider_needs_its_own_verify_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    staging = {**REAL_INFRA, "VELOCITY_ENV": "staging"}
    assert "OPERATOR_VERIFY_KEYS" in refusal(DeciderSettings, staging, monkeypatch, capsys)
    local_key = staging | {"OPERATOR_VERIFY_KEYS": LOCAL_VERIFY_KEYS.replace("local:", "prod:")}
    assert "local key" in refusal(DeciderSettings, local_key, monkeypatch, capsys)


def test_production_refuses_autonomous_research_whatever_the_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = STAGING_COLONY | {"VELOCITY_ENV": "production", "AUTONOMOUS_RESEARCH": "true"}
    assert "AUTONOMOUS_RESEARCH" in refusal(ColonySettings, env, monkeypatch, capsys)


def test_production_root_refuses_to_trust_the_local_key_for_release_evidence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = STAGING_ROOT | {"VELOCITY_ENV": "production"}
    assert "RELEASE_EVIDENCE_KEYS" in refusal(RootSettings, env, monkeypatch, capsys)


@pytest.mark.parametrize("replicas", ["0", "7", "two"])
def test_the_stack_refuses_replicas_that_could_not_all_own_a_partition(
    replicas: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(StackSettings, {"STACK_REPLICAS": replicas}, monkeypatch, capsys)
    assert "STACK_REPLICAS" in line and repr(replicas) in line

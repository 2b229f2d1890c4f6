"""The decider process's settings."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from infra.config import CommonSettings, ConfigurationError
from ledger.authority import (
    LOCAL_VERIFY_KEYS,
    OperatorAuthority,
    parse_verify_keys,
    trusts_local_key,
)
from ledger.faults import FAULT_PATTERN
from ledger.history_limit import DEFAULT_MAX_EVENTS


class DeciderSettings(CommonSettings):
    """Settings of `python -m ledger.decider`."""

    DECIDER_GROUP_ID: str = "velocity-decider"
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)
    DECIDER_MAX_BATCH: int = Field(default=500, gt=0)
    DECIDER_CACHE_MISSIONS: int = Field(default=1_000, ge=1)
    """Saved mission states kept in memory per partition (ledger/mission_cache.py); others
    are reloaded from their snapshot when a command names them. A state is ~4 KB: at
    10,000 a decider owning six partitions grew to ~300 MB over 45,000 missions (the colony
    soak); 6,000 states cover the missions touched in the last 100 s at 60 a second."""
    DECIDER_SNAPSHOT_BATCH: int = Field(default=2_000, ge=1)
    """States of a backlog saved per flush, all partitions together, beside those deciding
    changed since the last flush (ledger/snapshots.py). A rebuild that read a whole log
    holds every mission's state unsaved; saving them all in one flush stopped deciding for
    as long as writing them took (seconds at a million events): in slices, the mark of a
    partition moves once all its states are saved."""
    MISSION_MAX_EVENTS: int = Field(default=DEFAULT_MAX_EVENTS, ge=100)
    """Events an open mission may reach before it is failed (`history_limit`); an ended one
    keeps a tenth more, then commands about it are set aside (ledger/history_limit.py:
    each event more costs every later command of the mission, quadratically)."""
    OPERATOR_VERIFY_KEYS: str = LOCAL_VERIFY_KEYS
    DECIDER_FAULT: str | None = Field(default=None, pattern=FAULT_PATTERN)
    """Fault drills only (ledger/faults.py): `kill:N`, `refuse:N`, `slow_rebuild:MS`."""

    @field_validator("OPERATOR_VERIFY_KEYS")
    @classmethod
    def _keys_parse(cls, value: str) -> str:
        parse_verify_keys(value)
        return value

    @model_validator(mode="after")
    def _no_local_key_outside_local(self) -> DeciderSettings:
        self.require_explicit_outside_local("OPERATOR_VERIFY_KEYS")
        if self.VELOCITY_ENV != "local" and trusts_local_key(self.OPERATOR_VERIFY_KEYS):
            raise ConfigurationError(
                f"OPERATOR_VERIFY_KEYS: trusts the public local key in {self.VELOCITY_ENV}"
            )
        return self

    @property
    def authority(self) -> OperatorAuthority:
        return OperatorAuthority.parse(self.OPERATOR_VERIFY_KEYS)

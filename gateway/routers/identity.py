"""Who a key belongs to: how a client (the colony at start and in its /readyz) checks
that the root accepts its key, and with which role, without trying a real action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from gateway.auth import require
from gateway.keys import ROLES, Caller, Role
from gateway.problems import problems

router = APIRouter(prefix="/auth", tags=["auth"])
Anyone = Annotated[Caller, Depends(require(*ROLES))]


class Identity(BaseModel):
    role: Role
    name: str
    actor: str


@router.get("/whoami", response_model=Identity, responses=problems(401))
async def whoami(caller: Anyone) -> Identity:
    """The role and name the presented key stands for (never the key)."""
    return Identity(role=caller.role, name=caller.name, actor=caller.label)

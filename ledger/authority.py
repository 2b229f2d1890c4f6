"""Operator authority: proof that the root authenticated the operator a command names.

Anything that can produce to `mission.commands` can write `actor: "operator:alice"`; the
actor string alone proves nothing. So the root signs every command it issues for an
authenticated operator with an Ed25519 key only it holds (OPERATOR_SIGNING_KEY), over the
command's canonical bytes, and the decider verifies the signature with the matching
public key (OPERATOR_VERIFY_KEYS, several at once while a key is rotated). A command that
claims an operator without a valid proof is recorded as a CommandRejected; the colony
never holds the signing key, so it cannot approve its own writebacks.

Verification is pure (no I/O): `decide` calls `OperatorAuthority.refusal`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.canonical_json import canonical_json, record_json
from ledger.commands import Command, OperatorProof
from ledger.state import UNPROVEN

OPERATOR_PREFIX = "operator:"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
SEED_BYTES = 32
# The local stack's key pair, derived from a public phrase: like the local API keys, it is
# refused outside VELOCITY_ENV=local.
LOCAL_KEY_ID = "local"
LOCAL_SIGNING_KEY = base64.b64encode(
    hashlib.sha256(b"velocity local operator signing key").digest()
).decode()


def claims_operator(command: Command) -> bool:
    """Whether the command says an operator issued it."""
    return command.meta.actor.startswith(OPERATOR_PREFIX)


def signing_bytes(command: Command) -> bytes:
    """What the signature covers: the command's type, body and envelope except the proof,
    as sorted-key compact UTF-8 JSON (the same recipe as the event hash chain)."""
    document = {
        "body": command.body.model_dump(mode="json"),
        "meta": command.meta.model_dump(mode="json", exclude={"proof"}),
        "type": command.command_type,
    }
    return record_json(document)


def decode_key(text: str, what: str) -> bytes:
    """32 raw key bytes from standard or URL-safe base64; ValueError naming `what`."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{what} is not base64") from error
    if len(raw) != SEED_BYTES:
        raise ValueError(f"{what} must be {SEED_BYTES} bytes of base64, not {len(raw)}")
    return raw


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class OperatorSigner:
    """The root's half: signs commands issued for authenticated operators."""

    def __init__(self, key_id: str, seed_base64: str) -> None:
        self.key_id = key_id
        self._key = Ed25519PrivateKey.from_private_bytes(
            decode_key(seed_base64, "OPERATOR_SIGNING_KEY")
        )

    def public_key(self) -> str:
        """The base64 public key the deciders need (an OPERATOR_VERIFY_KEYS entry)."""
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return encode_key(raw)

    def sign_document(self, document: dict[str, Any]) -> dict[str, Any]:
        """`document` with this root's signature over its canonical JSON (a gate report
        carried from staging to production)."""
        signature = self._key.sign(canonical_json(document))
        return {"document": document, "key_id": self.key_id, "signature": encode_key(signature)}

    def sign(self, command: Command) -> Command:
        """`command` carrying the proof of this root's signature."""
        proof = OperatorProof(key_id=self.key_id, signature=self._key.sign(signing_bytes(command)))
        return command.model_copy(update={"meta": command.meta.model_copy(update={"proof": proof})})


def document_refusal(keys: Mapping[str, Ed25519PublicKey], signed: object) -> str | None:
    """Why `signed` ({document, key_id, signature}) is not a document signed by one of
    `keys`, or None when it is."""
    if not isinstance(signed, dict) or not {"document", "key_id", "signature"} <= set(signed):
        return "not a signed document: needs document, key_id and signature"
    key = keys.get(str(signed["key_id"]))
    if key is None:
        return f"signing key {signed['key_id']!r} is not trusted"
    try:
        signature = base64.b64decode(str(signed["signature"]), validate=True)
        key.verify(signature, canonical_json(signed["document"]))
    except (InvalidSignature, ValueError, binascii.Error):
        return "the signature does not match the document"
    return None


def parse_verify_keys(raw: str) -> dict[str, Ed25519PublicKey]:
    """`key_id:base64,key_id:base64` -> public keys; ValueError naming the bad entry."""
    keys: dict[str, Ed25519PublicKey] = {}
    for position, entry in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not re.match(NAME_PATTERN, key_id.strip()):
            raise ValueError(f"entry {position} is not key_id:base64_public_key")
        raw_key = decode_key(encoded, f"entry {position}")
        keys[key_id.strip()] = Ed25519PublicKey.from_public_bytes(raw_key)
    if not keys:
        raise ValueError("no key_id:public_key entries")
    return keys


class OperatorAuthority:
    """The decider's half: which operator claims are proven."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def parse(cls, raw: str) -> OperatorAuthority:
        return cls(parse_verify_keys(raw))

    def refusal(self, command: Command) -> tuple[str, str] | None:
        """(reason, detail) when `command` claims an operator without valid proof."""
        if not claims_operator(command):
            return None
        proof = command.meta.proof
        if proof is None:
            return UNPROVEN, "operator commands must carry the root's signature"
        key = self._keys.get(proof.key_id)
        if key is None:
            return UNPROVEN, f"signing key {proof.key_id!r} is not trusted"
        try:
            key.verify(proof.signature, signing_bytes(command))
        except InvalidSignature:
            return UNPROVEN, "the signature does not match the command"
        return None


LOCAL_PUBLIC_KEY = OperatorSigner(LOCAL_KEY_ID, LOCAL_SIGNING_KEY).public_key()
LOCAL_VERIFY_KEYS = f"{LOCAL_KEY_ID}:{LOCAL_PUBLIC_KEY}"


def trusts_local_key(verify_keys: str) -> bool:
    """Whether `verify_keys` (OPERATOR_VERIFY_KEYS) accepts the public local key."""
    return any(
        entry.partition(":")[2].strip() == LOCAL_PUBLIC_KEY for entry in verify_keys.split(",")
    )


def new_key_pair(key_id: str) -> tuple[str, str]:
    """(OPERATOR_SIGNING_KEY, OPERATOR_VERIFY_KEYS entry) of a fresh key pair."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return encode_key(seed), f"{key_id}:{OperatorSigner(key_id, encode_key(seed)).public_key()}"

"""The reviewer: the packet that lets an operator see why an answer can be trusted. Pure.

Every claim (sentence) of the output is linked to the evidence it cites ([n] markers that
point at gathered sources, each with its artifact hash); the checks say what was
verified: uncited claims, policy denials, provider failures. The verdict follows.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from ledger.commands import Verdict

CITATION = re.compile(r"\[(\d+)\]")


class Source(BaseModel):
    """A piece of evidence: where it came from and the hash of its stored content."""

    number: int
    title: str
    source: str
    content_hash: str


class Claim(BaseModel):
    text: str
    evidence: list[Source]


class ReviewerPacket(BaseModel):
    output: str
    claims: list[Claim]
    checks: dict[str, Any]
    verdict: Verdict
    why_trustworthy: str


def claims_of(output: str, sources: list[Source]) -> list[Claim]:
    by_number = {s.number: s for s in sources}
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", output) if s.strip()]
    return [
        Claim(
            text=sentence,
            evidence=[by_number[int(n)] for n in CITATION.findall(sentence) if int(n) in by_number],
        )
        for sentence in sentences
    ]


def review(
    output: str, sources: list[Source], policy_denials: list[str], provider_failures: list[str]
) -> ReviewerPacket:
    """The packet and its verdict: fail without evidence, warn on partial support."""
    claims = claims_of(output, sources)
    uncited = [c.text for c in claims if not c.evidence]
    checks = {
        "claims": len(claims),
        "uncited_claims": uncited,
        "sources": len(sources),
        "policy_denials": policy_denials,
        "provider_failures": provider_failures,
    }
    verdict: Verdict
    if not claims or not sources or len(uncited) == len(claims):
        verdict = "fail"
    elif uncited or policy_denials or provider_failures:
        verdict = "pass_with_warnings"
    else:
        verdict = "pass"
    cited = len(claims) - len(uncited)
    why = (
        f"{cited} of {len(claims)} claims cite {len(sources)} stored sources by content hash;"
        f" {len(policy_denials)} policy denials, {len(provider_failures)} provider failures."
    )
    return ReviewerPacket(
        output=output, claims=claims, checks=checks, verdict=verdict, why_trustworthy=why
    )


def check_lines(packet: ReviewerPacket) -> list[str]:
    """The checks as short lines for the ledger event."""
    checks = packet.checks
    return [
        f"claims={checks['claims']}",
        f"uncited={len(checks['uncited_claims'])}",
        f"sources={checks['sources']}",
        f"policy_denials={len(checks['policy_denials'])}",
        f"provider_failures={len(checks['provider_failures'])}",
    ]

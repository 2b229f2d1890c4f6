"""The seed's four dashboards for teams without Grafana: the same panels and PromQL as
dashboards/*.json, evaluated at this instant against the root's and the colony's metrics.

Only the PromQL those files use is understood: a selector with label matchers, `sum` /
`max` (with or without `by`), `rate(...[w])`, `increase(...[w])`, `histogram_quantile`
and `a / b` between vectors with the same labels. Without a time-series store a rate
cannot be taken, so `rate(x[w])` and `increase(x[w])` read x's total since the process
exporting it started (said under the panel): a ratio of two rates becomes the ratio of
the totals. Grafana over Prometheus shows the real rates. The samples are the root's
registry plus the colony's /metrics, as a Prometheus would scrape both.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "dashboards"
DASHBOARDS = ("mission_health", "policy_blocks", "provider_health", "approval_backlog")
Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]
Samples = dict[str, list[tuple[dict[str, str], float]]]

AGGREGATION = re.compile(r"^(sum|max)\s*(?:by\s*\(([^)]*)\))?\s*\((.*)\)$", re.S)
RATE = re.compile(r"^(?:rate|increase)\((.*)\[[^\]]+\]\)$", re.S)
QUANTILE = re.compile(r"^histogram_quantile\(\s*([0-9.]+)\s*,(.*)\)$", re.S)
SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$", re.S)
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|=)\s*"([^"]*)"\s*,?')


@dataclass(frozen=True)
class Series:
    label: str
    value: float
    share: float
    """Percent of the panel's largest value, for the bar's length."""


@dataclass(frozen=True)
class Panel:
    title: str
    series: list[Series]
    notes: list[str]


@dataclass(frozen=True)
class Dashboard:
    name: str
    title: str
    panels: list[Panel]


def samples(registry: CollectorRegistry) -> Samples:
    """Every sample of the registry by sample name (`x_total`, `x_bucket`, …)."""
    found: Samples = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return found


def samples_of_text(text: str) -> Samples:
    """Every sample of a Prometheus text exposition (the colony's /metrics)."""
    found: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return found


def evaluate(expr: str, data: Samples) -> Vector:
    """The instant vector of `expr` (see the module docstring for what is understood)."""
    expr = expr.strip()
    if (parts := _split_division(expr)) is not None:
        numerator, denominator = (evaluate(part, data) for part in parts)
        return {
            labels: value / denominator[labels]
            for labels, value in numerator.items()
            if denominator.get(labels)
        }
    if match := AGGREGATION.match(expr):
        op, by, inner = match.groups()
        keep = [label.strip() for label in (by or "").split(",") if label.strip()]
        grouped: dict[Labels, list[float]] = defaultdict(list)
        for labels, value in evaluate(inner, data).items():
            grouped[tuple((k, v) for k, v in labels if k in keep)].append(value)
        pick = sum if op == "sum" else max
        return {labels: float(pick(values)) for labels, values in grouped.items()}
    if match := RATE.match(expr):
        return evaluate(match.group(1), data)
    if match := QUANTILE.match(expr):
        return _quantile(float(match.group(1)), evaluate(match.group(2), data))
    match = SELECTOR.match(expr)
    if match is None:
        raise ValueError(f"PromQL the console does not evaluate: {expr}")
    name, matchers = match.group(1), match.group(2) or ""
    wanted = MATCHER.findall(matchers)
    return {
        tuple(sorted(labels.items())): value
        for labels, value in data.get(name, [])
        if all(_matches(labels.get(k, ""), op, v) for k, op, v in wanted)
    }


def _split_division(expr: str) -> tuple[str, str] | None:
    """`a / b` split at its top-level `/` (outside parentheses, braces, brackets, quotes)."""
    depth, quoted = 0, False
    for index, char in enumerate(expr):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "([{":
            depth += 1
        elif not quoted and char in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and char == "/":
            return expr[:index], expr[index + 1 :]
    return None


def _matches(actual: str, op: str, wanted: str) -> bool:
    if op == "=":
        return actual == wanted
    if op == "!=":
        return actual != wanted
    return re.fullmatch(wanted, actual) is not None


def _quantile(q: float, buckets: Vector) -> Vector:
    """histogram_quantile over cumulative buckets, interpolated as Prometheus does."""
    groups: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for labels, count in buckets.items():
        bound = dict(labels).get("le")
        if bound is not None:
            groups[tuple(p for p in labels if p[0] != "le")].append((float(bound), count))
    result: Vector = {}
    for labels, pairs in groups.items():
        pairs.sort()
        total = pairs[-1][1] if pairs else 0
        if not total:
            continue
        rank, lower, below = q * total, 0.0, 0.0
        for upper, cumulative in pairs:
            if cumulative >= rank:
                if upper == float("inf"):
                    result[labels] = lower
                else:
                    inside = cumulative - below
                    result[labels] = lower + (upper - lower) * ((rank - below) / inside)
                break
            lower, below = upper, cumulative
    return result


def panel(title: str, exprs: Iterable[str], data: Samples) -> Panel:
    """A panel's series from all its targets, labelled as a legend would."""
    notes: list[str] = []
    rows: list[tuple[str, float]] = []
    for expr in exprs:
        if "rate(" in expr or "increase(" in expr:
            notes.append("totals since the exporting process started (Prometheus shows rates)")
        for labels, value in sorted(evaluate(expr, data).items()):
            legend = ", ".join(f"{k}={v}" for k, v in labels) or "total"
            rows.append((legend, value))
    top = max((abs(value) for _, value in rows), default=0.0) or 1.0
    series = [Series(label, value, 100 * abs(value) / top) for label, value in rows]
    return Panel(title, series, sorted(set(notes)))


def load(
    registry: CollectorRegistry, also: Samples | None = None, directory: Path = DASHBOARDS_DIR
) -> list[Dashboard]:
    """The four dashboards, each panel evaluated now over the registry's samples and `also`
    (another process's, scraped)."""
    data = samples(registry)
    for name, found in (also or {}).items():
        data[name].extend(found)
    boards = []
    for name in DASHBOARDS:
        document = json.loads((directory / f"{name}.json").read_text())
        panels = [
            panel(p["title"], [t["expr"] for t in p.get("targets", [])], data)
            for p in document["panels"]
        ]
        boards.append(Dashboard(name, document.get("title", name), panels))
    return boards

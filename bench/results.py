"""The figures of one `make bench`, kept in .velocity/bench.json for people and tools.

Each benchmark process adds its figures as it measures them (a figure measured again
replaces the old one); `python -m bench.results` prints the table the README shows.
A figure with a raw path carries the raw path's value from the same run and the ratio.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("VELOCITY_DATA_DIR", ".velocity")) / "bench.json"


def record(name: str, value: float, unit: str, raw: float | None = None) -> None:
    """Keep one figure (and its raw path's, when it has one) in bench.json."""
    figures = [f for f in load() if f["name"] != name]
    ratio = round(value / raw, 3) if raw else None
    figures.append(
        {
            "name": name,
            "value": round(value, 3),
            "unit": unit,
            "raw": round(raw, 3) if raw is not None else None,
            "ratio": ratio,
        }
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


def load() -> list[dict[str, Any]]:
    return list(json.loads(RESULTS.read_text())) if RESULTS.exists() else []


def table() -> str:
    """bench.json as a Markdown table, headed by the machine it ran on."""
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        f"Machine: {machine}.",
        "",
        "| figure | value | unit | raw path | ratio |",
        "|---|---|---|---|---|",
    ]
    for figure in load():
        raw = f"{figure['raw']:,}" if figure["raw"] is not None else ""
        ratio = f"{figure['ratio']:.2f}" if figure["ratio"] is not None else ""
        lines.append(
            f"| {figure['name']} | {figure['value']:,} | {figure['unit']} | {raw} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())

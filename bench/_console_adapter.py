"""The console's benchmark, owned by the console: `bench/console.py`.

This adapter only runs it and copies its figures into the table. It runs it
as its own process, so a Textual app never shares this one: with
`--json FILE` if its `--help` offers that (and `--quick` under
`python -m bench --quick` if offered), else it reads the table the module
prints (columns NAME, MEASURED, TARGET; "max N ms" preferred over the first
number). JSON may take any of these shapes:

- ``[{"title"|"name"|"figure": ..., "samples": [...] | "median": x, "unit": ..., "target": ...}, ...]``
- ``{"figures": [ ...as above... ]}``
- ``{"<figure name>": <number (ms)>, ...}``

If the module is absent, fails, or reports nothing, the figure "console stall"
is reported missing with the reason; this package never measures it itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench._infra import Figure, Results, bench_module, progress, spawn

STALL_TARGET_MS = 50.0
TIMEOUT_S = 600.0


def _figures(document: Any) -> list[Figure]:
    items = document.get("figures", document) if isinstance(document, dict) else document
    figures: list[Figure] = []
    if isinstance(items, dict):
        for name, value in items.items():
            if isinstance(value, int | float):
                figures.append(Figure(f"console_{name}", f"console: {name}", "ms", [float(value)]))
        return figures
    for item in items or []:
        if not isinstance(item, dict):
            continue
        title = str(item.get("title") or item.get("name") or item.get("figure") or item.get("key") or "console figure")
        samples = item.get("samples") or ([item["median"]] if item.get("median") is not None else [])
        if not samples and isinstance(item.get("value"), int | float):
            samples = [item["value"]]
        target = item.get("target")
        figures.append(Figure(
            f"console_{item.get('key') or title}", title if "console" in title.lower() else f"console: {title}",
            str(item.get("unit") or "ms"), [float(s) for s in samples],
            float(target) if isinstance(target, int | float) else None,
            higher_is_better=bool(item.get("higher_is_better") or item.get("target_is_minimum")),
            command=str(item.get("command") or "python -m bench.console"), note=str(item.get("note") or ""),
        ))
    return figures


_NUMBER = re.compile(r"(?:(max|p50)\s+)?(\d+(?:\.\d+)?)\s*(ms|s)\b")


def _seconds_or_ms(text: str) -> tuple[float, str] | None:
    """The figure in a cell: the "max" value if there is one, else the first; (value, unit)."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    _label, number, unit = next((f for f in found if f[0] == "max"), found[0])
    return float(number), unit


def _from_table(stdout: str) -> list[Figure]:
    """Rows of the console benchmark's printed table: NAME  MEASURED  TARGET [ok|MISSED]."""
    lines = stdout.splitlines()
    header = next((i for i, ln in enumerate(lines) if "measured" in ln and "target" in ln), None)
    if header is None:
        return []
    name_width = lines[header].index("measured") - 2
    target_at = lines[header].index("target")
    figures = []
    for line in lines[header + 1 :]:
        name, measured, target = line[:name_width].strip(), line[name_width:target_at].strip(), line[target_at:]
        value = _seconds_or_ms(measured)
        if not name or value is None:
            continue
        goal = _seconds_or_ms(target.replace("≤", ""))
        limit = None
        if goal is not None:
            limit = goal[0] * (1000 if goal[1] == "s" and value[1] == "ms" else 0.001 if goal[1] == "ms" and value[1] == "s" else 1)
        figures.append(Figure(
            f"console_{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}", f"console: {name}", value[1], [value[0]],
            limit, command="python -m bench.console", note=f"as printed: {measured}",
        ))
    return figures


def run(profile: Any, results: Results) -> None:
    title = "console stall (1,000 agents, 100k lines)"
    if importlib.util.find_spec("bench.console") is None:
        results.missing("console_stall", title, "ms", "bench/console.py is absent", STALL_TARGET_MS)
        return
    exe, env = bench_module("console", dict(os.environ))
    usage = subprocess.run([*exe, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False).stdout
    with tempfile.TemporaryDirectory(prefix="sloth-bench-console-") as tmp:
        out = Path(tmp) / "console.json"
        argv = [*exe]
        if "--json" in usage:
            argv += ["--json", str(out)]
        if "--quick" in usage and profile.name.startswith("quick"):
            argv.append("--quick")
        progress("console: python -m bench.console " + " ".join(argv[len(exe):]))
        proc = spawn(argv, env=env, log=Path(tmp) / "console.err", stdout=subprocess.PIPE)
        try:
            stdout, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            results.missing("console_stall", title, "ms", f"bench.console did not finish in {TIMEOUT_S:.0f} s", STALL_TARGET_MS)
            return
        text = stdout.decode(errors="replace")
        try:
            figures = _figures(json.loads(out.read_text())) if out.exists() else _from_table(text)
        except ValueError as exc:
            figures = []
            progress(f"console: unreadable JSON ({exc})")
        if not figures:
            tail = (Path(tmp) / "console.err").read_text(errors="replace").strip().splitlines()[-1:] or [""]
            reason = f"bench.console exited {proc.returncode} with no figures: {tail[0][:120]}"
            results.missing("console_stall", title, "ms", reason, STALL_TARGET_MS)
            return
    for figure in figures:
        results.add(figure)

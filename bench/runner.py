"""`python -m bench`: run every benchmark, print one table, optionally write JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench._infra import Figure, Results, compile_sources, machine, progress, reap_all, versions


@dataclass
class Profile:
    """How much of each benchmark to run. ``full`` is the reference; ``quick`` a smoke check."""

    name: str
    cli_runs: int = 30
    inproc_runs: int = 200
    fanout_agents: int = 50
    fanout_runs: int = 20
    output_runs: int = 20
    stream_mib: int = 1024
    stream_runs: int = 3
    sizes: list[int] = field(default_factory=lambda: [10, 100, 1000, 10_000])
    agents_per_process: int = 250
    scale_runs: int = 10
    idle_window_s: float = 15.0
    watchers: int = 20
    cluster_agents: int = 1000  # two masters on PostgreSQL (issue 13)
    store_agents: int = 1000  # one master, SQLite then PostgreSQL (0: left out)
    keep: bool = False


PROFILES = {
    "full": Profile("full"),
    "quick": Profile(
        "quick", cli_runs=10, inproc_runs=50, fanout_agents=10, fanout_runs=5, output_runs=5,
        stream_mib=256, stream_runs=2, sizes=[10, 100], scale_runs=3, idle_window_s=5.0, watchers=5,
        # The stores' comparison (two fleets, ~30 s) would take --quick past its 2 minutes.
        cluster_agents=100, store_agents=0,
    ),
}
# The smallest sizes of --quick: what the test suite runs to keep the scripts from rotting.
SMALLEST = {
    "cli_runs": 3, "inproc_runs": 10, "fanout_agents": 3, "fanout_runs": 2, "output_runs": 2,
    "stream_mib": 16, "stream_runs": 1, "sizes": [10], "scale_runs": 2, "idle_window_s": 1.0, "watchers": 2,
    "cluster_agents": 10, "store_agents": 10,
}

# (group, module) in the order they run; each module has run(profile, results).
GROUPS = [
    ("latency", "bench.latency"),
    ("fleet", "bench.fleet_runs"),
    ("stdin", "bench.stdin"),
    ("shell", "bench.shell"),
    ("scale", "bench.scale"),
    ("cluster", "bench.cluster"),
    ("stores", "bench.stores"),
    ("console", "bench._console_adapter"),
]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a smoke check in under 2 minutes (smaller sizes, fewer runs)")
    p.add_argument("--smallest", action="store_true", help="with --quick: the smallest sizes (what the test suite runs)")
    p.add_argument("--only", metavar="GROUPS", help=f"comma list of groups to run: {','.join(g for g, _ in GROUPS)}")
    p.add_argument("--sizes", metavar="N,N,...", help="fleet sizes for the scale benchmarks (default 10,100,1000,10000; --quick 10,100)")
    p.add_argument("--runs", type=int, metavar="N", help="repetitions of each timed command")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary homes (logs, databases) for inspection")
    return p.parse_args(argv)


def _profile(args: argparse.Namespace) -> Profile:
    profile = PROFILES["quick" if args.quick else "full"]
    if args.smallest:
        profile = replace(profile, name=f"{profile.name}+smallest", **SMALLEST)  # type: ignore[arg-type]
    if args.sizes:
        profile = replace(profile, sizes=sorted({int(s) for s in args.sizes.split(",") if s.strip()}))
    if args.runs:
        n = args.runs
        profile = replace(profile, cli_runs=n, fanout_runs=n, output_runs=n, scale_runs=n, inproc_runs=max(n, 10))
    return replace(profile, keep=args.keep)


def _fmt(value: float | None, unit: str, *, with_unit: bool = True) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "MB", "MB/s", "%") and abs(value) < 10:
        text = f"{value:.2f}"
    elif unit in ("ms", "MB", "MB/s", "%") and abs(value) < 100:
        text = f"{value:.1f}"
    elif unit == "s":
        text = f"{value:.2f}"
    else:
        text = f"{value:.0f}"
    return f"{text} {unit}" if with_unit and unit else text


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render(results: Results, meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    out = [
        f"sloth-runner benchmarks ({meta['profile']}) - {m['cores']} cores, {m['cpu_model']}, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"load average (1, 5, 15 min): {meta['load_average']['start']} at start, {meta['load_average']['end']} at the end",
        "",
    ]
    rows = []
    for f in results.figures:
        lo = min(f.samples) if f.samples else None
        hi = max(f.samples) if f.samples else None
        spread = f"{_fmt(lo, f.unit, with_unit=False)}-{_fmt(hi, f.unit)}" if f.samples else "-"
        target = "-" if f.target is None else (">= " if f.higher_is_better else "<= ") + _fmt(f.target, f.unit)
        result = f"missing: {f.error}" if f.error else f"FAIL: {f.failure}" if f.failure else f.status
        rows.append([f.title, _fmt(f.median, f.unit), spread, target, result])
    out.append(_table(rows, ["figure", "median", "min-max", "target", "result"]))
    if results.growth:
        out += ["", "growth with fleet size (fleet simulator, security on):"]
        grows = [
            [
                str(g["agents"]),
                _fmt(g.get("register_s"), "s"),
                _fmt(g.get("list_ms"), "ms"),
                _fmt(g.get("run_all_ms"), "ms"),
                _fmt(g.get("master_rss_mb"), "MB"),
                _fmt(g.get("master_rss_after_runs_mb"), "MB"),
                _fmt(g.get("master_idle_cpu_pct"), "%"),
            ]
            for g in results.growth
        ]
        out.append(_table(grows, ["agents", "register+online", "agent list", "run --all 'true'", "master RSS", "RSS after jobs", "idle master CPU"]))
    notes = [f for f in results.figures if f.note or f.command]
    if notes:
        out += ["", "how each figure was produced:"]
        for f in notes:
            detail = "; ".join(x for x in (f.command, f.note) if x)
            out.append(f"- {f.title}: {detail}")
    passed = sum(f.status == "pass" for f in results.figures)
    failed = sum(f.status == "FAIL" for f in results.figures)
    missing = sum(f.status == "missing" for f in results.figures)
    out += ["", f"{passed} passed, {failed} failed, {missing} missing; {meta['duration_s']:.0f} s"]
    return "\n".join(out)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    profile = _profile(args)
    wanted = {g.strip() for g in args.only.split(",")} if args.only else {g for g, _ in GROUPS}
    unknown = wanted - {g for g, _ in GROUPS}
    if unknown:
        print(f"error: unknown group(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    compile_sources()
    load_at_start = os.getloadavg()
    results = Results()
    started = time.monotonic()
    try:
        for group, module in GROUPS:
            if group not in wanted:
                continue
            if group == "console" and args.smallest:
                continue  # the console benchmark has its own size; not part of the smoke check
            _run_group(group, lambda m=module: importlib.import_module(m).run(profile, results), results)
    except KeyboardInterrupt:
        progress("interrupted; stopping every process the benchmarks started")
        reap_all()
        return 130
    finally:
        reap_all()
    meta = {
        "profile": profile.name,
        "machine": machine(),
        "versions": versions(),
        "duration_s": time.monotonic() - started,
        # Other work on the machine shows up in every figure: say how busy it was.
        "load_average": {"start": [round(x, 2) for x in load_at_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(render(results, meta))
    if args.json:
        document = {**meta, "figures": [f.as_dict() for f in results.figures], "growth": results.growth}
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
    return 0


def _run_group(group: str, body: Callable[[], None], results: Results) -> None:
    before = len(results.figures)
    try:
        body()
    except Exception as exc:
        traceback.print_exc()
        progress(f"{group} failed: {exc}")
        results.add(Figure(f"{group}_error", f"{group} benchmarks", "", error=f"{type(exc).__name__}: {exc}"[:200]))
    finally:
        reap_all()
    progress(f"{group}: {len(results.figures) - before} figure(s)")

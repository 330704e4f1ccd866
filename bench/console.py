"""Benchmark of the operator console: a big fleet, a big stream, a responsive UI.

    python -m bench.console [--agents 1000] [--lines 100000] [--chunk-bytes 65536]

Runs the console headless against the stand-in master (a separate process,
speaking the real gRPC protocol) with a generated fleet, then measures:

* how long the fleet takes to load and draw;
* a burst of updates for every agent (how long to apply, the UI stall);
* keypresses on the table: from the key event to the frame that shows it;
* a run streaming ``--lines`` lines into one pane: from Enter, and from the
  arrival of its last bytes, to the frame that shows the last line;
* the longest stall of the UI event loop during each phase (a 10 ms timer's
  drift).

Headless Textual skips turning frames into terminal output; this benchmark
does that work too (into a buffer), so frames cost what they cost on a
terminal. Every figure is printed beside its target.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from textual import events  # noqa: E402
from textual._compositor import CompositorUpdate  # noqa: E402

from sloth_core.client import MasterClient  # noqa: E402
from sloth_tui.app import SlothApp, create_app, tune_gc  # noqa: E402
from sloth_tui.messages import RunBatch  # noqa: E402
from tests.tui.standin_master import StandinServer  # noqa: E402

SIZE = (160, 50)
TICK_S = 0.01


@dataclass
class Frames:
    """Every frame the app drew: when, and what the bench cares about in it."""

    times: list[float] = field(default_factory=list)
    cursor: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def first_after(self, t0: float, ok: Callable[[int], bool]) -> float | None:
        """The time of the first frame at or after ``t0`` for which ``ok(index)`` holds."""
        for i in range(bisect.bisect_left(self.times, t0), len(self.times)):
            if ok(i):
                return self.times[i]
        return None


class LoopLag:
    """Measures how late a 10 ms timer fires: the UI loop's stalls."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.samples.append((t, time.perf_counter() - t - TICK_S))

    def window(self, start: float, end: float) -> list[float]:
        return [lag for t, lag in self.samples if start <= t <= end] or [0.0]

    def worst(self, start: float, end: float) -> float:
        return max(self.window(start, end))

    def p99(self, start: float, end: float) -> float:
        lags = sorted(self.window(start, end))
        return lags[min(len(lags) - 1, int(len(lags) * 0.99))]

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def instrument(app: SlothApp, frames: Frames, batches: list[float]) -> None:
    """Record frames (rendering them to text as a terminal driver would) and RunBatch arrivals."""
    display = app._display

    def _display(screen, renderable) -> None:
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(app.console)
            frames.times.append(time.perf_counter())
            fleet = app.fleet_screen
            frames.cursor.append(fleet.table.cursor_row if fleet.is_mounted else -1)
            run = fleet.pane.run if fleet.is_mounted else None
            log = fleet.pane.log_view if fleet.is_mounted else None
            at_end = log is not None and log.is_vertical_scroll_end
            frames.lines.append(len(run.lines) + run.dropped_lines if run is not None and at_end else 0)
        display(screen, renderable)

    app._display = _display  # type: ignore[method-assign]
    post = app.post_message

    def post_message(message) -> bool:
        if isinstance(message, RunBatch):
            batches.append(time.perf_counter())
        return post(message)

    app.post_message = post_message  # type: ignore[method-assign]


async def wait(condition, timeout: float = 60.0) -> float:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the console did not get there in time")
        await asyncio.sleep(0.002)
    return time.perf_counter()


def press(app: SlothApp, key: str) -> float:
    event = events.Key(key, None)
    event.set_sender(app)
    t0 = time.perf_counter()
    app._driver.send_message(event)  # type: ignore[union-attr]
    return t0


async def keypress_latencies(app: SlothApp, frames: Frames, count: int) -> list[float]:
    """Alternate down/up on the table; each: key event to the first frame showing the cursor moved."""
    table = app.fleet_screen.table
    out = []
    for i in range(count):
        key = "down" if i % 2 == 0 else "up"
        expected = table.cursor_row + (1 if key == "down" else -1)
        t0 = press(app, key)

        def shown(t0: float = t0, expected: int = expected) -> float | None:
            return frames.first_after(t0, lambda j: frames.cursor[j] == expected)

        await wait(lambda: shown() is not None, 5)
        out.append(shown() - t0)  # type: ignore[operator]
        await asyncio.sleep(0.03)
    return out


async def raw_stream_time(address: str, command: str) -> float:
    """The same run read by a bare client: what the network and protobuf cost without a UI."""
    async with MasterClient(address, None) as client:
        t0 = time.perf_counter()
        async for _ in client.run(names=["node-0002"], command=command):
            pass
        return time.perf_counter() - t0


async def stream_round(
    app: SlothApp, frames: Frames, batches: list[float], lag: LoopLag, agent: str, args: argparse.Namespace
) -> tuple[float, float, float, list[float]]:
    """Run ``lines N`` on ``agent`` from the prompt; time it to the frame showing its last line."""
    screen = app.fleet_screen
    screen.table.move_to(agent)
    await asyncio.sleep(0.1)
    screen.prompt.focus()
    screen.prompt.value = f"lines {args.lines}"
    await asyncio.sleep(0.1)
    before = app.store.current_job
    batches.clear()
    t_enter = press(app, "enter")
    await wait(lambda: app.store.current_job not in (None, before))
    await asyncio.sleep(0.05)
    # Keys while it streams (the pane switches to the next agent and back).
    during = await keypress_latencies(app, frames, 10) if args.keys_during else []
    run = app.store.for_agent(agent)
    assert run is not None
    await wait(lambda: not run.active, 120)
    total = args.lines

    def drawn() -> float | None:
        return frames.first_after(t_enter, lambda i: frames.lines[i] >= total)

    await wait(lambda: drawn() is not None, 60)
    t_all = drawn()
    assert t_all is not None
    assert len(run.lines) + run.dropped_lines == total, (len(run.lines), run.dropped_lines)
    stall = lag.worst(t_enter, time.perf_counter())
    await asyncio.sleep(0.3)
    return t_all - t_enter, t_all - batches[-1], stall, during


@dataclass
class Figure:
    """One measured figure: samples in ``unit``, an optional upper bound."""

    key: str
    title: str
    unit: str
    samples: list[float]
    target: float | None = None
    shown: str = ""

    @property
    def worst(self) -> float:
        return max(self.samples)

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.worst <= self.target

    def cell(self) -> str:
        if self.shown:
            return self.shown
        fmt = "{:.0f} ms" if self.unit == "ms" else "{:.2f} s"
        return fmt.format(self.worst)

    def target_cell(self) -> str:
        if self.target is None:
            return "—"
        return f"≤ {self.target:g} {self.unit}"


def spread(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples):.0f} ms, max {max(samples):.0f} ms"


def stall_cell(worst_ms: float, p99_ms: float) -> str:
    return f"max {worst_ms:.0f} ms (p99 {p99_ms:.0f} ms)"


async def bench(args: argparse.Namespace) -> list[Figure]:
    server = StandinServer(args.agents, chunk_bytes=args.chunk_bytes)
    address = server.start()
    figures: list[Figure] = []
    ms = 1000.0
    try:
        app = create_app(lambda: MasterClient(address, None), target=address)
        frames, batches = Frames(), []
        instrument(app, frames, batches)
        lag = LoopLag()
        t_start = time.perf_counter()
        async with app.run_test(size=SIZE) as pilot:
            lag.start()
            table = app.fleet_screen.table
            # ---------------------------------------------------------- load
            t_loaded = await wait(lambda: table.row_count == args.agents)
            t_drawn = await wait(lambda: frames.first_after(t_loaded, lambda i: True) is not None)
            await pilot.pause(0.3)
            figures.append(Figure("load", f"fleet of {args.agents:,} loaded and drawn", "s", [t_drawn - t_start]))
            figures.append(Figure("load_stall", "  longest UI stall while loading", "ms",
                                  [lag.worst(t_start, t_drawn) * ms],
                                  shown=stall_cell(lag.worst(t_start, t_drawn) * ms, lag.p99(t_start, t_drawn) * ms)))

            # ---------------------------------------------------------- churn
            stamp = 1_760_000_000.0
            t0 = time.perf_counter()
            await asyncio.to_thread(server.command, "touch", str(args.agents), str(stamp))
            last = sorted(app.fleet.agents)[-1]
            t1 = await wait(lambda: app.fleet.agents[last].last_seen == stamp)
            await pilot.pause(0.3)
            figures.append(Figure("burst", f"{args.agents:,} agent updates applied", "ms", [(t1 - t0) * ms]))
            t2 = time.perf_counter()
            figures.append(Figure("burst_stall", "  longest UI stall during the burst", "ms",
                                  [lag.worst(t0, t2) * ms], 50,
                                  stall_cell(lag.worst(t0, t2) * ms, lag.p99(t0, t2) * ms)))

            # ---------------------------------------------------------- keys, idle
            idle = [t * ms for t in await keypress_latencies(app, frames, 40)]
            figures.append(Figure("key_idle", "keypress on the table → frame (idle)", "ms", idle, 50, spread(idle)))

            # ---------------------------------------------------------- the stream
            # Each round streams into another agent's pane, keys pressed meanwhile.
            totals, tails, stalls, during = [], [], [], []
            t_streams = time.perf_counter()
            for round_ in range(args.rounds):
                agent = f"node-{2 * round_ + 1:04d}"
                total, tail, stall, keys = await stream_round(app, frames, batches, lag, agent, args)
                totals.append(total)
                tails.append(tail)
                stalls.append(stall * ms)
                during += [t * ms for t in keys]
            p99 = lag.p99(t_streams, time.perf_counter()) * ms
            lines = f"{args.lines:,} lines"
            worst = f" (worst of {args.rounds})" if args.rounds > 1 else ""
            figures.append(Figure("stream_total", f"{lines}: Enter → last line drawn{worst}", "s", totals))
            figures.append(Figure("stream_drawn", f"{lines}: last bytes in → last line drawn{worst}", "s", tails, 2))
            figures.append(Figure("stream_stall", f"  longest UI stall during the stream{worst}", "ms", stalls, 50,
                                  stall_cell(max(stalls), p99)))
            if during:
                figures.append(Figure("key_streaming", "keypress on the table → frame (streaming)", "ms", during,
                                      50, spread(during)))
            lag.stop()
        raw = await raw_stream_time(address, f"lines {args.lines}")
        figures.append(Figure("bare_client", f"  (same {args.lines:,} lines read by a bare client)", "s", [raw]))
    finally:
        server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the sloth-runner console.")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--chunk-bytes", type=int, default=64 * 1024,
                        help="output chunk size the master relays (64 KiB like the agent; smaller = more messages)")
    parser.add_argument("--no-keys-during", dest="keys_during", action="store_false",
                        help="do not press keys while the stream runs")
    parser.add_argument("--rounds", type=int, default=3, help="streams to run (the worst is reported)")
    parser.add_argument("--quick", action="store_true", help="one stream round instead of three")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    load_before = os.getloadavg()[0]
    tune_gc()  # as `sloth-runner tui` does
    figures = asyncio.run(bench(args))
    load_after = os.getloadavg()[0]
    print(f"sloth-runner console: {args.agents:,} agents, {args.lines:,} lines in {args.chunk_bytes:,}-byte chunks, "
          f"terminal {SIZE[0]}x{SIZE[1]}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load_before:.1f} → {load_after:.1f}")
    width = max(len(f.title) for f in figures)
    print(f"{'':{width}}  {'measured':<28}  target")
    for figure in figures:
        verdict = {None: "", True: "  ok", False: "  MISSED"}[figure.ok]
        print(f"{figure.title:{width}}  {figure.cell():<28}  {figure.target_cell()}{verdict}")
    if args.json:
        command = "python -m bench.console " + " ".join(argv if argv is not None else sys.argv[1:])
        note = f"load average {load_before:.1f} → {load_after:.1f} on {os.cpu_count()} CPUs"
        args.json.write_text(json.dumps({"figures": [
            {"key": f.key, "title": f"console: {f.title.strip()}", "unit": f.unit, "samples": f.samples,
             "target": f.target, "command": command.strip(), "note": note}
            for f in figures
        ]}, indent=2))
    return 1 if any(f.ok is False for f in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())

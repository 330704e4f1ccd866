"""Machine facts: read from a fake /proc, and only real changes travel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sloth_core.agent.facts import Facts, changed, read_facts


def _fake_proc(tmp_path: Path, available_kb: int = 4_000_000) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "meminfo").write_text(f"MemTotal:       8000000 kB\nMemFree: 1 kB\nMemAvailable:   {available_kb} kB\n")
    (proc / "uptime").write_text("12345.67 999.0\n")
    return proc


def test_reads_memory_uptime_and_os_from_the_files(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "os-release").write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    facts = read_facts(proc=_fake_proc(tmp_path), etc=etc, root=str(tmp_path))
    assert facts.mem_total == 8_000_000 * 1024
    assert facts.mem_percent == 50.0
    assert facts.uptime_s == 12345
    assert facts.os == "Debian GNU/Linux 12 (bookworm)"
    assert facts.cpus >= 1 and facts.disk_total > 0 and 0 <= facts.disk_percent <= 100


def test_missing_files_give_zeros_not_errors(tmp_path: Path) -> None:
    facts = read_facts(proc=tmp_path / "nope", etc=tmp_path / "nope", root=str(tmp_path / "nope"))
    assert (facts.mem_total, facts.uptime_s, facts.disk_total) == (0, 0, 0)
    assert facts.mem_percent == 0.0 and facts.disk_percent == 0.0


def test_only_changes_worth_sending_travel() -> None:
    base = Facts(cpus=2, load=(0.5, 0.4, 0.3), mem_total=1000_000, mem_available=500_000, uptime_s=10)
    assert changed(None, base)["cpus"] == 2
    # Uptime alone and sub-per-mille memory drift are noise.
    assert changed(base, replace(base, uptime_s=25, mem_available=500_500)) == {}
    diff = changed(base, replace(base, uptime_s=25, load=(1.5, 0.4, 0.3)))
    assert diff == {"load": (1.5, 0.4, 0.3), "uptime_s": 25}
    assert "mem_available" in changed(base, replace(base, mem_available=100_000))

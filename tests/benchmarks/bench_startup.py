"""Start-up time of `mailbot --help` and `mailbot inspect FILE` (prints figures; not a test).

    python tests/benchmarks/bench_startup.py [--runs N] [--top N]

Each command runs N times in a fresh process (as an operator would start it), from an empty
folder without a mailbot.toml and without MAILBOT_* variables, so no config is read. Prints the
median and the fastest wall time of each and the median CPU time (user + system, from the
child's rusage: what the command costs whatever else the machine is doing), each against its
target (issue #16: `--help` under 0.3 s, `inspect` of a small brief under 0.5 s), then the
modules with the largest cumulative import time of one run under `python -X importtime`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "briefs" / "01-lokalebooking-komplet.eml"


def command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m mailbot.cli`."""
    script = Path(sys.executable).with_name("mailbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mailbot.cli"]


def clean_env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE would make every run compile mailbot anew: an installed mailbot
    # runs from .pyc files, as pip writes them (and the first run here, for an editable one)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MAILBOT_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def timed_runs(args: list[str], runs: int, cwd: Path) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) per run of `mailbot ARGS`, CPU = user + system of the
    child (os.wait4). Raises CalledProcessError when a run fails."""
    walls, cpus = [], []
    for _ in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen([*command(), *args], cwd=cwd, env=clean_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - started)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, child.args)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return walls, cpus


def import_times(args: list[str], cwd: Path, top: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of one run, largest first."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "mailbot.cli", *args],
                            cwd=cwd, env=clean_env(), capture_output=True, text=True, check=True)
    rows = []
    for line in result.stderr.splitlines():
        # "import time:      self [us] |  cumulative | imported package"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # top level only: nested imports are inside these
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    options = parser.parse_args()
    cases = {"--help": ["--help"], f"inspect {FIXTURE.name}": ["inspect", str(FIXTURE)]}
    targets = {"--help": 0.3, f"inspect {FIXTURE.name}": 0.5}
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        for args in cases.values():  # compile the .pyc files first
            timed_runs(args, 1, cwd)
        for label, args in cases.items():
            walls, cpus = timed_runs(args, options.runs, cwd)
            wall = statistics.median(walls)
            mark = "✔" if wall < targets[label] else "✘"
            print(f"mailbot {label:40} wall median {wall * 1000:5.0f} ms, min "
                  f"{min(walls) * 1000:5.0f} ms; CPU median {statistics.median(cpus) * 1000:5.0f}"
                  f" ms   target < {targets[label] * 1000:.0f} ms {mark}   ({options.runs} runs)")
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: with other "
              "work running, the wall time is more than the CPU time)")
        for label, args in cases.items():
            print(f"\npython -X importtime: mailbot {label} (top-level imports, cumulative)")
            for micros, name in import_times(args, cwd, options.top):
                print(f"  {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()

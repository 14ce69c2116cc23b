"""Start-up time of `mailbot --help` and `mailbot inspect FILE` (prints figures; not a test).

    python tests/benchmarks/bench_startup.py [--runs N] [--top N]

Each command runs N times in a fresh process (as an operator would start it), from an empty
folder without a mailbot.toml and without MAILBOT_* variables, so no config is read. Prints the
median and the fastest wall time of each, then the modules with the largest cumulative import
time of one run under `python -X importtime`. Target: `--help` under 0.3 s.
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def wall_times(args: list[str], runs: int, cwd: Path) -> list[float]:
    """Seconds per run of `mailbot ARGS`; raises CalledProcessError when it fails."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*command(), *args], cwd=cwd, env=clean_env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - started)
    return times


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
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        wall_times(["--help"], 1, cwd)  # compile the .pyc files first
        for label, args in cases.items():
            times = wall_times(args, options.runs, cwd)
            print(f"mailbot {label:40} median {statistics.median(times) * 1000:6.0f} ms"
                  f"   min {min(times) * 1000:6.0f} ms   ({options.runs} runs)")
        for label, args in cases.items():
            print(f"\npython -X importtime: mailbot {label} (top-level imports, cumulative)")
            for micros, name in import_times(args, cwd, options.top):
                print(f"  {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()

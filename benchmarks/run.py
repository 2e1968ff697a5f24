"""The benchmark: ``python benchmarks/run.py [--mode site|flows] [--quick] [--profile]``.

Site mode runs, on one cached synthetic capture (``sitemix``), the floor loop, ``egresswatch
replay``, egresswatch behind its BPF pre-filter, ``replay --workers 2``, NFStream, tshark,
softflowd and nfpcapd (each when available), every one in its own subprocess, ``--repeat`` times,
and reports the median: packets/s, ratio to the floor, egresswatch's ratio to each peer, and peak
RSS from ``os.wait4``. Flows mode measures the flow table: peak RSS and evictions at 20k and 1M
concurrent flows under different ``flows.max``. Results go to stdout as a table and to
``benchmarks/results/<mode>[-quick]-<date>.json``. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flowmix
import sitemix
from siteconfig import write_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROFILE_LINES = 90
"""Top of the call tree kept in profile.txt; pyinstrument already hides frames under ~1%."""
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None
TARGETS = {
    "full pipeline packets/s": ("egresswatch", "pps", 1.0e6),
    "full pipeline vs nfstream": ("egresswatch", "vs:nfstream", 3.5),
    "full pipeline vs tshark": ("egresswatch", "vs:tshark", 6.0),
    "pre-filter vs softflowd": ("egresswatch-prefilter", "vs:softflowd", 1.0),
    "workers 2 vs 1": ("egresswatch-workers2", "vs:egresswatch", 1.8),
}


@dataclass
class Run:
    """One tool measured over one file: ``repeat`` subprocesses, the median reported."""

    name: str
    command: list[str]
    packets: int
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    error: str | None = None
    output: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def pps(self) -> float | None:
        median = self.median
        return self.packets / median if median else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "available": self.error is None,
            "error": self.error,
            "seconds": [round(s, 4) for s in self.seconds],
            "median_seconds": round(self.median, 4) if self.median else None,
            "packets_per_second": round(self.pps) if self.pps else None,
            "peak_rss_mib": round(max(self.rss_kib) / 1024, 1) if self.rss_kib else None,
        }


def python_environment(cache: Path) -> dict[str, str]:
    """Python subprocesses run as an installed package does: modules compiled to bytecode once and
    the bytecode reused (pip compiles it at install). Without this, a machine that sets
    PYTHONDONTWRITEBYTECODE (this one does) recompiles every module at every start, ~0.1 s of
    egresswatch's and NFStream's time that no deployment pays. The bytecode goes under ``cache``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    return env


def warm_bytecode(env: dict[str, str]) -> None:
    """Compile what the Python runs import, before any is timed."""
    subprocess.run([sys.executable, "-c", "import egresswatch.cli, egresswatch.pipeline, egresswatch.bpf, "
                    "egresswatch.workers, egresswatch.sinks.summary, drivers\ntry:\n import nfstream\n"
                    "except ImportError:\n pass"], cwd=HERE, env=env, check=True)


def measure(command: Sequence[str], cwd: Path, scratch: Path, timeout: float,
            env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run ``command`` once: (wall seconds, peak RSS KiB, stdout).

    Peak RSS is the ru_maxrss ``os.wait4`` returns: the largest RSS of the child or any descendant
    it reaped (NFStream's meter process, for one). Linux carries the forking process's RSS
    high-water mark into the child's ru_maxrss, so a child forked from this ~25 MiB harness could
    never report less; when GNU time is installed the command is started through it (a 2 MiB
    process) and its ``%M`` (the same ru_maxrss, taken one fork further down) is used instead.
    A run that outlives ``timeout`` seconds is killed and reported as an error.
    """
    out_path = scratch / "stdout"
    rss_path = scratch / "maxrss"
    rss_path.unlink(missing_ok=True)
    if GNU_TIME:
        command = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *command]
    with out_path.open("wb") as out:
        start = time.perf_counter()
        # A session of its own, so the watchdog kills GNU time's child and NFStream's meters too.
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        watchdog.start()
        stderr = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = out_path.read_text(errors="replace")
    if elapsed >= timeout:
        raise RuntimeError(f"killed after {timeout:.0f} s without finishing")
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {stderr.decode(errors='replace').strip()[-500:]}")
    rss = int(rss_path.read_text().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return elapsed, rss, output


def run_repeated(run: Run, args: argparse.Namespace, scratch: Path) -> Run:
    for _ in range(args.repeat):
        try:
            seconds, rss, run.output = measure(run.command, REPO, scratch, args.timeout, args.env)
        except (OSError, RuntimeError) as exc:
            run.error = str(exc)
            run.seconds.clear()
            return run
        run.seconds.append(seconds)
        run.rss_kib.append(rss)
    return run


def site_runs(pcap: Path, config: Path, packets: int, scratch: Path) -> list[Run]:
    """Every command of site mode; tools that are not installed get a Run with the error set."""
    py = sys.executable
    events = str(scratch / "events.jsonl")
    replay = [
        py,
        "-m",
        "egresswatch",
        "replay",
        str(pcap),
        "-c",
        str(config),
        "--events",
        events,
        "--summary-json",
        str(scratch / "summary.json"),
        "--metrics-out",
        str(scratch / "metrics.prom"),
        "--no-progress",
    ]
    pipeline = [py, str(HERE / "drivers.py"), "pipeline", str(pcap), "-c", str(config), "--events", events]
    runs = [
        Run("floor", [py, str(HERE / "floor.py"), str(pcap)], packets),
        Run("egresswatch", replay, packets),
        Run("egresswatch-prefilter", [*pipeline, "--bpf"], packets),
        Run("egresswatch-workers2", [*replay, "--workers", "2"], packets),
        Run("nfstream", [py, str(HERE / "drivers.py"), "nfstream", str(pcap)], packets),
        Run("tshark", ["tshark", "-q", "-z", "conv,ip", "-r", str(pcap)], packets),
        # "-c none": with a control socket softflowd 1.1.0 can block in accept() after the file ends.
        Run(
            "softflowd",
            ["softflowd", "-r", str(pcap), "-d", "-6", "-c", "none", "-p", str(scratch / "softflowd.pid")],
            packets,
        ),
        Run("nfpcapd", ["nfpcapd", "-r", str(pcap), "-w", str(scratch / "nfpcapd")], packets),
    ]
    (scratch / "nfpcapd").mkdir(exist_ok=True)
    for run in runs:
        if shutil.which(run.command[0]) is None:
            run.error = f"{run.command[0]} not installed"
    return runs


def site_mode(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    spec = sitemix.QUICK if args.quick else sitemix.SiteSpec()
    started = time.perf_counter()
    pcap = sitemix.ensure_capture(spec, args.cache)
    generated = time.perf_counter() - started
    config = write_config(spec, args.cache)
    runs = site_runs(pcap, config, spec.packets, scratch)
    for run in runs:
        if run.error is None:
            print(f"  {run.name} ...", file=sys.stderr, flush=True)
            run_repeated(run, args, scratch)
    by_name = {run.name: run for run in runs}
    results = {run.name: run.as_dict() for run in runs}
    floor = by_name["floor"].pps
    for run in runs:
        entry = results[run.name]
        entry["ratio_to_floor"] = round(run.pps / floor, 3) if run.pps and floor else None
        entry["vs"] = {
            other.name: round(run.pps / other.pps, 2)
            for other in runs
            if other is not run and run.pps and other.pps and other.name != "floor"
        }
    prefilter = by_name["egresswatch-prefilter"]
    if prefilter.error is None and prefilter.output:
        results["egresswatch-prefilter"]["passed_filter"] = json.loads(prefilter.output)["packets"]
    return {
        "capture": {
            "path": str(pcap.relative_to(REPO) if pcap.is_relative_to(REPO) else pcap),
            "packets": spec.packets,
            "bytes": pcap.stat().st_size,
            "spec": spec_dict(spec),
            "generation_seconds": round(generated, 2),
        },
        "runs": results,
        "targets": targets(results),
    }


def targets(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for label, (name, metric, goal) in TARGETS.items():
        entry = results.get(name, {})
        if metric == "pps":
            value = entry.get("packets_per_second")
        else:
            value = entry.get("vs", {}).get(metric.removeprefix("vs:"))
        out[label] = {"target": goal, "measured": value, "met": None if value is None else value >= goal}
    return out


def flows_mode(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Flow-table memory: (flows in the capture, flows.max) pairs, each replayed ``repeat`` times."""
    small, large = (1_000, 5_000) if args.quick else (20_000, 1_000_000)
    bound = large // 10
    # (small, small // 10) shows eviction counting at a size that finishes even if eviction is slow.
    cases = [(small, None), (small, small // 10), (large, large + large // 20), (large, None), (large, bound)]
    site = sitemix.QUICK if args.quick else sitemix.SiteSpec()
    results: dict[str, Any] = {}
    for flows, max_flows in cases:
        pcap = flowmix.ensure_capture(flows, args.cache)
        name = f"{flows}-flows-max-{max_flows or 'default'}"
        config = write_config(site, scratch, f"{name}.yaml", {"max": max_flows} if max_flows else None)
        metrics = scratch / f"{name}.prom"
        command = [
            sys.executable,
            "-m",
            "egresswatch",
            "replay",
            str(pcap),
            "-c",
            str(config),
            "--metrics-out",
            str(metrics),
            "--no-progress",
        ]
        print(f"  {name} ...", file=sys.stderr, flush=True)
        run = run_repeated(Run(name, command, 2 * flows), args, scratch)
        entry = {"flows": flows, "flows_max": max_flows or "default (262144)", **run.as_dict()}
        if run.error is None:
            entry["evictions"] = metric_value(metrics, "egresswatch_flow_evictions_total")
            entry["flows_total"] = metric_value(metrics, "egresswatch_flows_total")
        results[name] = entry
    return {
        "runs": results,
        "targets": {
            "peak RSS at 20k flows < 120 MiB": {
                "target_mib": 120,
                "measured_mib": results[f"{small}-flows-max-default"]["peak_rss_mib"],
            },
            "peak RSS at 1M flows < 1 GiB": {
                "target_mib": 1024,
                "measured_mib": results[f"{large}-flows-max-{large + large // 20}"]["peak_rss_mib"],
            },
        },
    }


def metric_value(path: Path, name: str) -> float | None:
    """A label-less sample from a Prometheus text file."""
    for line in path.read_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def spec_dict(spec: sitemix.SiteSpec) -> dict[str, int]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def code_version() -> dict[str, Any]:
    """The commit measured, and which egresswatch files differed from it (others work in this tree)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "egresswatch").splitlines()
    return {"head": git("rev-parse", "HEAD"), "uncommitted": [line[3:] for line in changed]}


def machine() -> dict[str, Any]:
    """Enough to judge the numbers: CPUs, model, load (these machines are shared)."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def profile(args: argparse.Namespace, scratch: Path) -> Path:
    """pyinstrument (sampling, so the hot loop is not slowed per call) over the site-mix pipeline."""
    from drivers import run_pipeline
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    spec = sitemix.QUICK if args.quick else sitemix.SiteSpec()
    pcap = sitemix.ensure_capture(spec, args.cache)
    config = write_config(spec, args.cache)
    profiler = Profiler(interval=0.0005)
    with profiler:
        run_pipeline(str(pcap), str(config), str(scratch / "events.jsonl"), bpf=False)
    tree = profiler.output(ConsoleRenderer(time="percent_of_total"))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / ("profile-quick.txt" if args.quick else "profile.txt")
    header = f"pyinstrument over the full pipeline on {pcap.name} ({spec.packets} packets), {today()}\n"
    path.write_text(header + "\n".join(tree.splitlines()[:PROFILE_LINES]) + "\n", encoding="utf-8")
    return path


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def print_table(result: dict[str, Any]) -> None:
    print(f"{'run':<24}{'packets/s':>12}{'x floor':>9}{'median s':>10}{'peak RSS MiB':>14}  notes")
    for name, entry in result["runs"].items():
        pps = entry.get("packets_per_second")
        ratio = entry.get("ratio_to_floor")
        median = entry.get("median_seconds")
        rss = entry.get("peak_rss_mib")
        notes = entry.get("error") or ""
        if "evictions" in entry:
            notes = f"flows.max {entry['flows_max']}, evictions {entry['evictions']:.0f}"
        print(f"{name:<24}{pps or '-':>12}{ratio or '-':>9}{median or '-':>10}{rss or '-':>14}  {notes[:60]}")
    for label, target in result.get("targets", {}).items():
        print(f"target {label}: {target}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("site", "flows"), default="site")
    parser.add_argument("--quick", action="store_true", help="tiny captures: checks the harness, not speed")
    parser.add_argument("--profile", action="store_true", help="profile the pipeline instead of benchmarking")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    parser.add_argument("--cache", type=Path, default=HERE / "cache", help="generated captures and configs")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="egresswatch-bench-") as tmp:
        scratch = Path(tmp)
        if args.profile:
            print(f"profile written to {profile(args, scratch)}")
            return 0
        args.env = python_environment(args.cache)
        warm_bytecode(args.env)
        before = machine()
        body = site_mode(args, scratch) if args.mode == "site" else flows_mode(args, scratch)
    result = {
        "mode": args.mode,
        "quick": args.quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "machine": before,
        "code": code_version(),
        "load_average_after": machine()["load_average"],
        **body,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{args.mode}{'-quick' if args.quick else ''}-{today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Instructions, not seconds: ``python benchmarks/instructions.py [--baseline REV] [--quick]``.

Wall-clock time on a shared machine moves by tens of percent from one minute to the next (the
floor of the site benchmark read 1.4 M packets/s one day and 2.4 M another). Valgrind's callgrind
counts the instructions a run executes, which repeat whatever else the machine is doing: the same
tree to ~1e-6, the same code in two trees to ~1e-4 (tests/test_benchmarks.py holds it to 1e-3).
This runs ``egresswatch replay`` over the site mix, with every sink as run.py does, under
callgrind for the work tree and for a baseline revision (default HEAD), both in one invocation,
and prints each count and its ratio to the baseline; JSON goes to
``benchmarks/results/instructions[-quick]-<date>.json``.

The baseline is a ``git archive`` of the revision in a temporary directory. Both trees get their C
extension built the way pip builds it (``pip wheel``, the interpreter's flags), and each
replay runs from inside its own tree, so neither imports the other's code (an editable install
or the current directory would otherwise decide). Both trees are measured at once, one per core.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import sitemix
from run import python_environment
from siteconfig import write_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def export_tree(revision: str, into: Path) -> Path:
    """The files of ``revision`` (a commit) in ``into``."""
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=REPO, check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def work_tree(into: Path) -> Path:
    """The work tree's tracked and untracked (not ignored) files in ``into``, as they are now."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout
    into.mkdir(parents=True)
    files = b"\0".join(p for p in listed.split(b"\0") if p and (REPO / p.decode()).is_file())
    tar = subprocess.run(["tar", "-c", "--null", "-T", "-"], cwd=REPO, input=files, check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def build_extension(tree: Path) -> None:
    """Build ``tree``'s wheel as pip does (its own build environment) and put the extension in place."""
    wheels = tree.parent / f"{tree.name}-wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
                    str(tree)], check=True, capture_output=True)
    with zipfile.ZipFile(next(wheels.glob("egresswatch-*.whl"))) as wheel:
        built = [name for name in wheel.namelist() if name.startswith("egresswatch/_fastpath.")]
        if not built:
            raise RuntimeError(f"{tree}: the wheel has no C extension (no compiler?)")
        wheel.extractall(tree, built)


def count(tree: Path, pcap: Path, config: Path, scratch: Path, env: dict[str, str]) -> int:
    """Instructions of one replay of ``pcap`` by the egresswatch in ``tree``."""
    # a fixed hash seed: dict layouts (and so instruction counts) then repeat from run to run
    env = {**env, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    check = ("import egresswatch._fastpath as f, egresswatch.flows as m; "
             f"assert f.__file__.startswith({str(tree)!r}) and m.__file__.startswith({str(tree)!r})")
    subprocess.run([sys.executable, "-c", check], cwd=tree, env=env, check=True)
    replay = [sys.executable, "-m", "egresswatch", "replay", str(pcap), "-c", str(config),
              "--events", str(scratch / "events.jsonl"), "--summary-json", str(scratch / "summary.json"),
              "--metrics-out", str(scratch / "metrics.prom"), "--no-progress"]
    # once outside valgrind: the bytecode is compiled and cached, as for an installed package
    subprocess.run(replay, cwd=tree, env=env, check=True, capture_output=True)
    log = scratch / "callgrind.log"
    subprocess.run(["valgrind", "--tool=callgrind", f"--log-file={log}", "--callgrind-out-file=/dev/null",
                    *replay], cwd=tree, env=env, check=True, capture_output=True)
    found = re.search(r"Collected : (\d+)", log.read_text())
    if found is None:
        raise RuntimeError(f"callgrind reported no count: {log.read_text()[-500:]}")
    return int(found[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare the work tree with")
    parser.add_argument("--quick", action="store_true", help="the tiny site mix: checks the harness")
    parser.add_argument("--cache", type=Path, default=HERE / "cache")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    spec = sitemix.QUICK if args.quick else sitemix.SiteSpec()
    pcap = sitemix.ensure_capture(spec, args.cache)
    config = write_config(spec, args.cache)
    revision = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="egresswatch-instructions-") as temp:
        root = Path(temp)
        env = python_environment(root)
        # names of one length: paths end up in hashed strings, so even they move counts a little
        trees = {f"baseline {revision}": export_tree(revision, root / "baseline"),
                 "work tree": work_tree(root / "worktree")}
        for tree in trees.values():
            build_extension(tree)
        scratch = {name: root / f"scratch-{i}" for i, name in enumerate(trees)}
        for path in scratch.values():
            path.mkdir()

        def measure(name: str) -> int:
            return count(trees[name], pcap, config, scratch[name], env)

        with ThreadPoolExecutor(max_workers=len(trees)) as pool:
            counts = dict(zip(trees, pool.map(measure, trees), strict=True))
    baseline = counts[f"baseline {revision}"]
    print(f"{'tree':<24}{'instructions':>16}{'x baseline':>12}")
    for name, value in counts.items():
        print(f"{name:<24}{value:>16,}{value / baseline:>12.4f}")
    result = {"capture": pcap.name, "packets": spec.packets, "baseline": revision,
              "instructions": counts, "ratio_to_baseline": counts["work tree"] / baseline,
              "date": datetime.now(UTC).strftime("%Y-%m-%d")}
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"instructions{'-quick' if args.quick else ''}-{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

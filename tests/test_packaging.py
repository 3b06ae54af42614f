"""What a user meets before any data: the extras that install, and a command line that starts at once."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the issue's bound for ``isthmus --help``; importing torch alone takes several seconds on this machine
HELP_SECONDS = 0.5
#: modules that a command imports when it runs, never for --help
HEAVY = ("torch", "sklearn", "numpy", "scipy", "pandas", "pyarrow", "PIL", "constriction")


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project["optional-dependencies"])


def test_all_extra_names_every_optional_extra() -> None:
    extras = _extras()
    (requirement,) = extras["all"]
    named = re.fullmatch(r"isthmus\[([a-z0-9_,\-]+)\]", requirement)
    assert named is not None, f"'all' must be one self-reference isthmus[...], got {requirement!r}"
    # "test" and "docs" are the developers' extras (pytest, ruff, mypy; mkdocs), not features of the library
    assert set(named.group(1).split(",")) == set(extras) - {"all", "test", "docs"}


def _run(*args: str, code: str | None = None) -> tuple[float, str]:
    """Run isthmus (or ``code``) in a fresh interpreter: the CPU seconds it took, and its output.

    CPU time rather than wall time: on a loaded machine a process waits for a core without doing more work.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-c", code] if code is not None else [sys.executable, "-m", "isthmus", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, done.stdout


_EVERY_HELP = """
import sys
from isthmus.cli import cli, main

for args in (["--help"], ["--version"], *([name, "--help"] for name in cli.commands)):
    main(args)
print(sorted(m for m in HEAVY if m in sys.modules))
"""


def test_help_imports_nothing_heavy() -> None:
    _, out = _run(code=f"HEAVY = {HEAVY!r}\n{_EVERY_HELP}")
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("train", "--help"), ("compress", "--help")])
def test_help_is_fast(args: tuple[str, ...]) -> None:
    # the best of three runs: the machine is shared, and a busy cache slows even CPU time
    seconds = min(_run(*args)[0] for _ in range(3))
    assert seconds < HELP_SECONDS, f"isthmus {' '.join(args)} took {seconds:.2f} s of CPU time"

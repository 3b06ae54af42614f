"""The front door works: the README's and the guides' examples run, the generated pages are current,
no link leaves the repository, the site builds with ``mkdocs build --strict``, and the benches record
their figures with their provenance.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from isthmus.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
#: Guide pages whose python blocks are run as they are (the API and CLI pages hold none).
EXAMPLE_PAGES = [DOCS / "getting-started.md", *sorted((DOCS / "guides").glob("*.md"))]


def _module(path: Path) -> ModuleType:
    """Import a script that is not in a package (docs/gen_*.py, bench/_common.py) by its path."""
    spec = importlib.util.spec_from_file_location(f"_under_test_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


def _blocks(page: Path, language: str) -> list[str]:
    """The fenced code blocks of ``page`` whose info string is ``language`` (empty: plain fences)."""
    blocks: list[str] = []
    current: list[str] | None = None
    info = ""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```") and current is None:
            current, info = [], line[3:].strip()
        elif line.startswith("```"):
            if info == language:
                blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _run_python(code: str, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(where)
    namespace: dict[str, Any] = {"__name__": "__example__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the examples keep their epochs short
        exec(compile(code, "<example>", "exec"), namespace)
    return namespace


def test_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; keep it at 150 at most, move detail to docs/"
    text = "\n".join(lines)
    for kept in ("make demo", "make test", "pip install", "docs/digits.png"):
        assert kept in text


def test_readme_python_example_runs_and_beats_pca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = _blocks(README, "python")
    assert len([line for line in code.splitlines() if line.strip()]) <= 8, "keep the README's example at 8 lines"
    namespace = _run_python(code, tmp_path, monkeypatch)
    result = namespace["result"]
    # what the example prints: the autoencoder's held-out error beside PCA's with the same code size
    assert result["autoencoder"]["sse_per_sample"] < result["pca"]["sse_per_sample"]
    assert namespace["codes"].shape == (297, 8)
    np.testing.assert_array_equal(namespace["same"].transform(namespace["X"][1500:]), namespace["codes"])


def test_readme_cli_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    commands = [
        line
        for block in _blocks(README, "")
        for line in block.splitlines()
        if line.startswith("isthmus ") and "digits" in line
    ]
    assert len(commands) == 3, commands
    monkeypatch.chdir(tmp_path)
    for line in commands:
        argv = shlex.split(line.split("#")[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            assert cli_main(argv[1:]) == 0, (line, capsys.readouterr().err)
    assert np.load(tmp_path / "codes.npy").shape == (297, 8)
    printed = capsys.readouterr().out
    assert "PCA-8" in printed  # evaluate printed the baseline beside the model


def _anomalies_found(ns: dict[str, Any]) -> None:
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(ns["labels"], -ns["scores"]) > 0.9
    assert 0.02 < (ns["ae"].predict(ns["new"]) == -1).mean() < 0.3  # 30 of 330 rows are anomalies


def _cleaner_than_noisy(ns: dict[str, Any]) -> None:
    truth = ns["X"][1500:]
    assert np.square(ns["clean"] - truth).mean() < np.square(ns["noisy"] - truth).mean()


def _decoded_better_than_the_mean(ns: dict[str, Any]) -> None:
    truth = ns["X"][1500:]
    assert ns["X_back"].shape == truth.shape
    assert np.square(ns["X_back"] - truth).mean() < np.square(truth - ns["X"][:1500].mean(axis=0)).mean()
    assert len(ns["blob"]) < truth.size  # under a byte per pixel


def _anomaly_found(ns: dict[str, Any]) -> None:
    assert ns["scores"].shape == ns["flags"].shape == (3000,)  # one per timestamp, the first W - 1 included
    assert 2500 <= int(np.argmin(ns["scores"])) < 2520  # the least normal timestamp lies in the anomaly
    flagged = np.flatnonzero(ns["flags"] == -1)
    assert flagged.size and ((flagged >= 2500 - 50) & (flagged < 2520 + 50)).mean() > 0.9  # flags near it
    assert ns["codes"].shape == (591, 4)  # one code per window: starts 0, 5, ..., 2950
    assert ns["short"].shape == (1469, 4, 16) and ns["long"].shape == (1373, 4, 64)  # one conv1d network
    assert 2500 - 256 < int(np.argmin(ns["long_scores"])) < 2520 + 256


def _any_size_kept(ns: dict[str, Any]) -> None:
    assert ns["code"].shape == (1, 4, 10, 14)
    assert [a.shape for a in ns["back"]] == [(1, 40, 56), (33, 47)]
    error = np.abs(ns["back"][0].astype(float) - ns["photo"][0]).mean()
    assert error < np.abs(ns["photo"] - ns["photo"].mean()).mean()  # closer than the image's own mean


#: What each guide's example claims, checked on the names it leaves behind.
CLAIMS = {
    "screen": _anomalies_found,
    "denoise": _cleaner_than_noisy,
    "compress": _decoded_better_than_the_mean,
    "series": _anomaly_found,
    "images": _any_size_kept,
}


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.stem)
def test_guide_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(page, "python")
    assert blocks, f"{page.name} has no python example"
    namespace: dict[str, Any] = {}
    for code in blocks:
        namespace.update(_run_python(code, tmp_path, monkeypatch))
    if page.stem in CLAIMS:
        CLAIMS[page.stem](namespace)


def test_cli_reference_is_current() -> None:
    gen_cli = _module(DOCS / "gen_cli.py")
    assert gen_cli.main(["--check"]) == 0, "docs/cli.md is stale: run `python docs/gen_cli.py` and commit it"
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    from isthmus.cli import COMMANDS

    for command in COMMANDS:  # every command has its section, with its options
        assert f"## isthmus {command.name}\n" in page
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in page, (command.name, opt)


def test_results_page_is_current() -> None:
    gen_results = _module(DOCS / "gen_results.py")
    assert gen_results.main(["--check"]) == 0, "docs/results.md is stale: run `make results` and commit it"


def test_record_appends_the_figures_with_their_provenance(tmp_path: Path) -> None:
    common = _module(ROOT / "bench" / "_common.py")
    gen_results = _module(DOCS / "gen_results.py")
    argv = [str(ROOT / "bench" / "mnist_recon.py"), "--out", "runs/x y.safetensors"]
    headline = {"what": "held-out SSE", "figure": "2.50", "baseline": "PCA-30: 14.00"}
    for sse in (2.5, 2.4):
        path = common.record({"sse_per_image": sse}, headline, directory=tmp_path, argv=argv)
    assert path == tmp_path / "mnist_recon.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["figures"]["sse_per_image"] for line in lines] == [2.5, 2.4]  # appended, never replaced
    first = lines[0]
    assert first["bench"] == "mnist_recon"
    assert first["command"] == "bench/mnist_recon.py --out 'runs/x y.safetensors'"  # as typed at the root
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert first["commit"].removesuffix("+dirty") == head.stdout.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", first["date"])
    assert {k: first[k] for k in headline} == headline
    page = gen_results.render(tmp_path)
    assert "## mnist_recon" in page and "| held-out SSE | 2.50 | PCA-30: 14.00 |" in page


def test_record_refuses_nothing_but_results_page_refuses_a_broken_line(tmp_path: Path) -> None:
    gen_results = _module(DOCS / "gen_results.py")
    (tmp_path / "bad.jsonl").write_text('{"command": "x", "commit": "abc", "date": "d"}\nnot json\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2 is not JSON"):
        gen_results.render(tmp_path)


def test_benches_read_data_from_flags_or_isthmus_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for script in (ROOT / "bench").glob("*.py"):  # no path into a folder beside the repository
        assert "shared/data" not in script.read_text(encoding="utf-8"), script.name
    common = _module(ROOT / "bench" / "_common.py")
    monkeypatch.delenv("ISTHMUS_DATA", raising=False)
    with pytest.raises(SystemExit, match="pass --train and --test, or set ISTHMUS_DATA"):
        common.data_file("mnist-train.npz")
    monkeypatch.setenv("ISTHMUS_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="not found"):
        common.data_file("mnist-train.npz")
    (tmp_path / "mnist-train.npz").write_bytes(b"")
    assert common.data_file("mnist-train.npz") == tmp_path / "mnist-train.npz"


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<a\s[^>]*href=\"([^\"]+)\"|^\[[^\]]+\]:\s*(\S+)", re.M)


def _anchors(page: Path) -> set[str]:
    """The heading ids that MkDocs' toc gives ``page``: lower case, word characters and dashes."""
    text = re.sub(r"^```.*?^```$", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    ids = set()
    for title in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
        ids.add(re.sub(r"[-\s]+", "-", slug))
    return ids


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    text = re.sub(r"^```.*?^```$", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)  # code is not links
    for match in _LINK.finditer(text):
        target = next(group for group in match.groups() if group)
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I), f"{page.name}: {target} leaves the repository"
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        assert linked.is_relative_to(ROOT), f"{page.name}: {target} is outside the repository"
        if page.is_relative_to(DOCS) and path_part:
            assert linked.is_relative_to(DOCS), f"{page.name}: {target} is outside docs/, so the site cannot show it"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading #{anchor} in {linked.name}"


def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs comes with the test extra; install '.[docs]'")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "score_samples" in api and "n_components" in api  # the docstrings made it into the page
    for html in (tmp_path / "site").rglob("*.html"):  # the built site links nowhere outside itself
        for url in re.findall(r"(?:href|src)=\"(https?://[^\"]+)\"", html.read_text(encoding="utf-8")):
            pytest.fail(f"{html.relative_to(tmp_path)} links to {url}")

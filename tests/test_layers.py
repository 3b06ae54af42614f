"""Layers that only point down: no import cycles among isthmus's modules, no module using another's private
names, and nothing below the estimator importing it (DESIGN.md, "The shape of the system").

Every import counts: at the top of a module, inside a function, or under ``TYPE_CHECKING``. The checks read
the source with ``ast``, so they run in milliseconds and see imports that never execute.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import isthmus

SRC = Path(isthmus.__file__).parent
#: modules allowed to import the estimator: the package itself and the layers above it, which use only
#: its public API
ABOVE_ESTIMATOR = (
    *("isthmus", "isthmus.__main__", "isthmus.cli"),
    *("isthmus.metrics", "isthmus.report", "isthmus.rd", "isthmus.export"),
)
#: leading-underscore attributes that are public API elsewhere: namedtuple's methods
PUBLIC_UNDERSCORE = frozenset({"_fields", "_replace", "_asdict", "_make", "_field_defaults"})


def module_sources(root: Path = SRC) -> dict[str, str]:
    """``{"isthmus.codec": source, ...}`` for every module of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path.read_text(encoding="utf-8")
    return out


def _package_of(name: str, sources: Mapping[str, str]) -> str:
    """The package a relative import in module ``name`` starts from."""
    is_package = any(other.startswith(name + ".") for other in sources)
    return name if is_package else name.rpartition(".")[0]


def _target(name: str, sources: Mapping[str, str]) -> str:
    """The module ``name`` refers to: itself, or the nearest enclosing module that exists."""
    while name and name not in sources:
        name = name.rpartition(".")[0]
    return name


def imports(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """``{module: the isthmus modules it imports}``, every import statement counted wherever it stands.

    A package's ``__init__`` counts as imported with its submodules where it runs or is read: importing
    ``isthmus.data.stream`` from outside ``isthmus.data`` runs ``isthmus/data/__init__.py`` first, and
    ``from isthmus.data import stream`` takes ``stream`` from the package, even inside it (the root package
    aside: every module is below it, and its ``__init__`` imports only leaves eagerly).
    """
    graph: dict[str, set[str]] = {}
    for name, source in sources.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "isthmus":
                        deps.add(_target(alias.name, sources))
                        deps.update(_packages_run(name, alias.name, sources))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = _package_of(name, sources)
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}" if base else package
                if base.split(".")[0] != "isthmus":
                    continue
                deps.update(_packages_run(name, base, sources))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in sources else _target(base, sources))
                    if full in sources and base != "isthmus":  # a submodule read off its package
                        deps.add(base)
        deps.discard(name)
        deps.discard("")
        graph[name] = deps
    return graph


def _packages_run(importer: str, module: str, sources: Mapping[str, str]) -> set[str]:
    """The packages above ``module`` (the root aside) whose ``__init__`` importing it runs: those the
    importer is not itself inside, whose ``__init__`` has started before the importer could run."""
    parts = module.split(".")
    above = (".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {p for p in above if p in sources and p != module and not importer.startswith(p + ".")}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE


def private_uses(sources: Mapping[str, str]) -> list[str]:
    """``"module: what"`` for every use of another module's private name: ``from m import _x``, and
    ``obj._x`` where the module itself defines no ``_x`` (as its own classes' methods and attributes)."""
    out = []
    for name, source in sources.items():
        tree = ast.parse(source)
        nodes = list(ast.walk(tree))
        own = {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        own |= {n.attr for n in nodes if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
        own |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("isthmus")):
                out.extend(f"{name}: from {node.module} import {a.name}" for a in node.names if _is_private(a.name))
            elif isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr not in own:
                out.append(f"{name}: {ast.unparse(node)} (line {node.lineno})")
    return out


def estimator_importers(graph: Mapping[str, set[str]]) -> list[str]:
    """Modules below the estimator that import it."""
    return sorted(
        name
        for name, deps in graph.items()
        if "isthmus.estimator" in deps
        and not any(name == top or name.startswith(top + ".") for top in ABOVE_ESTIMATOR if top != "isthmus")
        and name != "isthmus"
    )


# ---------------------------------------------------------------------------------------------- the package


def test_no_import_cycles() -> None:
    assert cycles(imports(module_sources())) == []


def test_no_module_uses_another_modules_private_names() -> None:
    assert private_uses(module_sources()) == []


def test_nothing_below_the_estimator_imports_it() -> None:
    graph = imports(module_sources())
    assert estimator_importers(graph) == []
    for low in ("isthmus.artifact", "isthmus.codec", "isthmus.scoring", "isthmus.lossless", "isthmus.fitted"):
        assert "isthmus" not in graph[low]  # the package imports the estimator: a cycle by another road


# ---------------------------------------------------------------------------------------------- the checks


def test_the_checks_find_what_they_look_for() -> None:
    """Each check flags a made-up package that breaks its rule, type-only and function-local imports too."""
    sources = {
        "isthmus": "from isthmus.estimator import Autoencoder\n",
        "isthmus.estimator": "from isthmus import codec\n",
        "isthmus.codec": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from isthmus.estimator import Autoencoder\n"
            "def f(ae):\n    from .lossless import _tables\n    return ae._batched(ae.net_._output)\n"
        ),
        "isthmus.lossless": "class A:\n    def _own(self):\n        return self._own() or other._own()\n",
    }
    graph = imports(sources)
    assert graph["isthmus.codec"] == {"isthmus.estimator", "isthmus.lossless"}
    assert cycles(graph) == [["isthmus.codec", "isthmus.estimator"]]
    assert estimator_importers(graph) == ["isthmus.codec"]
    uses = private_uses(sources)
    assert any("import _tables" in u for u in uses)
    assert any("ae._batched" in u for u in uses) and any("ae.net_._output" in u for u in uses)
    assert not any(u.startswith("isthmus.lossless") for u in uses)  # a module's own private names are its own


def test_a_cycle_through_a_packages_init_is_found() -> None:
    """``from isthmus.data import limits`` reads ``limits`` off the package, whose ``__init__`` imports the
    importer back: a cycle. From outside the package, any import of ``isthmus.data.limits`` runs that
    ``__init__`` too; from inside, ``import isthmus.data.limits`` runs nothing new."""
    sources = {
        "isthmus": "",
        "isthmus.data": "from isthmus.data.dataset import Dataset\n",
        "isthmus.data.dataset": "from isthmus.data import limits\n",
        "isthmus.data.limits": "import os\n",
        "isthmus.codec": "import isthmus.data.limits\n",
        "isthmus.rd": "from isthmus.data.limits import check\n",
    }
    graph = imports(sources)
    assert graph["isthmus.data.dataset"] == {"isthmus.data", "isthmus.data.limits"}
    assert graph["isthmus.codec"] == graph["isthmus.rd"] == {"isthmus.data", "isthmus.data.limits"}
    assert cycles(graph) == [["isthmus.data", "isthmus.data.dataset"]]
    sources["isthmus.data.limits"] = "from isthmus.codec import f\n"  # outside and back in, through the package
    assert cycles(imports(sources)) == [
        ["isthmus.codec", "isthmus.data", "isthmus.data.dataset", "isthmus.data.limits"]
    ]
    sources["isthmus.data.dataset"] = "import isthmus.data.limits as limits\n"
    sources["isthmus.data.limits"] = "import os\n"
    assert cycles(imports(sources)) == []

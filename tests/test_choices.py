"""Choices live in their tables: the estimator's docstring and the CLI's options list exactly the tables'
entries and defaults, so that a new entry cannot leave a stale list behind (DESIGN.md, style rule 14).

``tests/test_config.py`` checks that ``config.CHOICES`` is each table's keys; this file checks what a user
reads: the ``Parameters`` section of ``Autoencoder``'s docstring and the choices of the CLI's options.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from isthmus import Autoencoder, estimator
from isthmus.cli import cli
from isthmus.config import CHOICES, DEFAULTS, PRESETS, split_params
from isthmus.errors import ConfigError
from isthmus.export import PARTS
from isthmus.rd import CODECS, MODES

#: ``name : {"a", "b"}, default="a"`` or ``name : type, default=value`` in a numpydoc Parameters section
_PARAM = re.compile(r"^    (?P<name>\w+) : (?P<kind>\{[^}]*\}|[^\n]*?)(?:, default=(?P<default>.+))?$", re.M)


def documented() -> dict[str, tuple[tuple[str, ...] | None, str | None]]:
    """``{name: (listed choices or None, default text or None)}`` from the estimator's Parameters section."""
    doc = Autoencoder.__doc__ or ""
    section = doc.split("Parameters\n    ----------\n", 1)[1].split("\n    Attributes\n", 1)[0]
    out = {}
    for m in _PARAM.finditer(section):
        kind = m["kind"]
        listed = tuple(ast.literal_eval(f"[{kind[1:-1]}]")) if kind.startswith("{") else None
        out[m["name"]] = (listed, m["default"])
    return out


def test_the_docstring_lists_each_tables_choices() -> None:
    docs = documented()
    for name, choices in CHOICES.items():
        assert name in docs, f"the docstring does not document {name}"
        listed, _ = docs[name]
        assert listed == choices, f"the docstring lists {name} : {listed}; the table has {choices}"


def test_the_source_lists_no_choices_by_hand() -> None:
    # estimator.py writes each choice ``name : {...}``; the import spells it from the table (document_choices),
    # so a new table entry needs no docstring edit and no list there can go stale
    source = (Path(estimator.__file__)).read_text()
    for name in CHOICES:
        assert re.search(rf"^    {name} : {{\.\.\.}}, default=", source, re.M), f"estimator.py spells out {name}"


def test_the_docstring_gives_the_defaults() -> None:
    docs = documented()
    assert len(docs) >= 20  # the parse found the section
    for name, (_, default) in docs.items():
        if default is not None:
            assert ast.literal_eval(default) == DEFAULTS[name], f"{name}: documented default={default}"


def test_the_docstring_documents_only_parameters() -> None:
    assert set(documented()) <= set(DEFAULTS)


def _choice_options() -> dict[tuple[str, str], tuple[str, ...]]:
    """``{(command, option): its click.Choice values}`` over every command of the CLI."""
    out = {}
    group = cli
    assert isinstance(group, click.Group)
    for name, command in group.commands.items():
        for param in command.params:
            if isinstance(param.type, click.Choice):
                out[name, param.name or ""] = tuple(str(c) for c in param.type.choices)
    return out


#: the table each CLI option's choices come from
CLI_TABLES: dict[str, tuple[str, ...]] = {
    "preset": tuple(sorted(PRESETS)),
    "codecs": tuple(CODECS),
    "part": PARTS,
    "mode": (*MODES, "both"),
}


def test_cli_choices_are_the_tables() -> None:
    options = _choice_options()
    assert options, "no option with choices found"
    for (command, option), choices in options.items():
        assert option in CLI_TABLES, f"{command} --{option}: say which table its choices come from"
        assert choices == CLI_TABLES[option], f"{command} --{option} offers {choices}"


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_a_choice_outside_the_table_is_refused_naming_the_table(name: str) -> None:
    allowed = ", ".join(CHOICES[name])
    with pytest.raises(ConfigError, match=re.escape(f"{name}='nope' is not allowed; choose one of: {allowed}")):
        split_params({**DEFAULTS, name: "nope"})

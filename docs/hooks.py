"""MkDocs hooks: pages generated from the code before each build, so they cannot drift from it.

- ``reference/scenario.md``: every key of the scenario schema (``fl_sim.config.schema.Scenario``),
  its type, default and description, section by section;
- ``reference/cli.md``: ``fl-sim --help`` and each command's help;
- ``reference/components.md``: every registered attack, rule, pre-aggregator, dataset, model,
  quantizer, protocol and mitigation (``fl-sim list``).
"""

from __future__ import annotations

import enum
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

DOCS = Path(__file__).parent
GENERATED = ("reference/scenario.md", "reference/cli.md", "reference/components.md")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "None")


def _nested(tp: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type (the type itself, or its arguments, recursively)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for a in typing.get_args(tp) for m in _nested(a)]


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list):
        value = [v.value if isinstance(v, enum.Enum) else v for v in value]
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(model: type[BaseModel], path: str, seen: set[str], out: list[str]) -> None:
    rows, children = [], []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        nested = _nested(field.annotation)
        kind = _type_name(field.annotation)
        rows.append(f"| `{key}` | {_cell(kind)} | {_cell(_default(field))} | {_cell(field.description or '')} |")
        for sub in nested:
            if sub.__name__ not in seen:
                seen.add(sub.__name__)
                children.append((sub, key))
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    out += [f"## `{path or 'top level'}`", "", doc, "", "| key | type | default | description |", "|---|---|---|---|", *rows, ""]
    for sub, key in children:
        _section(sub, key, seen, out)


def scenario_reference() -> str:
    """The scenario schema as Markdown tables, one per section."""
    from fl_sim.config.schema import Scenario

    out = [
        "# Scenario reference",
        "",
        "Generated from `fl_sim/config/schema.py` at each documentation build. Every key is typed and",
        "validated once; unknown keys are refused by name. Component parameters (`attack.params`,",
        "`strategy.params`, `strategy.pre[].params`) are checked against the named component's own",
        "`Params` (see the [components](components.md) and the guide pages).",
        "",
    ]
    _section(Scenario, "", {"Scenario"}, out)
    return "\n".join(out) + "\n"


def cli_reference() -> str:
    """``fl-sim --help`` and each subcommand's help."""
    import argparse

    from fl_sim.cli import build_parser

    parser = build_parser()
    out = [
        "# Command line",
        "",
        "Generated from `fl_sim/cli.py` at each documentation build.",
        "",
        "```text",
        parser.format_help(),
        "```",
    ]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        out += ["", f"## `fl-sim {name}`", "", "```text", sub.format_help(), "```"]
    return "\n".join(out) + "\n"


def components_reference() -> str:
    """Every registry's entries (``fl-sim list``)."""
    from fl_sim.components import CATALOGUE, MALICIOUS

    out = ["# Components", "", "Generated from the registries at each documentation build (`fl-sim list KIND`).", ""]
    for kind, registry in CATALOGUE.items():
        out += [f"## {kind}", "", "| name | description |", "|---|---|"]
        for e in registry:
            tag = " (attack)" if kind == "attacks" and e.name in MALICIOUS else ""
            out.append(f"| `{e.name}`{tag} | {_cell(e.description)} |")
        out.append("")
    return "\n".join(out) + "\n"


def on_pre_build(config: Any) -> None:
    """Write the generated pages into docs/ (ignored by git)."""
    (DOCS / "reference").mkdir(exist_ok=True)
    for rel, text in zip(GENERATED, (scenario_reference(), cli_reference(), components_reference())):
        path = DOCS / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")

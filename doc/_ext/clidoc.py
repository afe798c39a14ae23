"""``.. click-commands:: module:object``: the reference of a click command tree.

Built from the commands themselves at documentation time (usage, help, options,
subcommands), so the reference cannot drift from the code. Help texts become plain
text nodes: they are never parsed as reStructuredText.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx


def _load(spec: str) -> click.Command:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _paragraphs(text: str) -> list[nodes.Node]:
    blocks = [" ".join(block.split()) for block in text.split("\n\n")]
    return [nodes.paragraph(text=block) for block in blocks if block]


def _options(ctx: click.Context, command: click.Command) -> nodes.Node | None:
    items = nodes.definition_list()
    for param in command.get_params(ctx):
        if param.name == "help":
            continue
        record = param.get_help_record(ctx)
        if record is None:
            if not isinstance(param, click.Argument):
                continue
            record = (param.make_metavar(ctx), "")
        term = nodes.term()
        term += nodes.literal(text=record[0])
        definition = nodes.definition()
        definition += nodes.paragraph(text=record[1] or "(argument)")
        item = nodes.definition_list_item()
        item += term
        item += definition
        items += item
    return items if items.children else None


class ClickCommands(Directive):
    """Document a click group and, recursively, its subcommands."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        command = _load(self.arguments[0])
        return self._section(command, click.Context(command, info_name="sat-storage"))

    def _section(self, command: click.Command, ctx: click.Context) -> list[nodes.Node]:
        path = ctx.command_path
        section = nodes.section(ids=[nodes.make_id(path)])
        section += nodes.title(text=path)
        usage = " ".join(command.collect_usage_pieces(ctx))
        section += nodes.literal_block(text=f"{path} {usage}")
        section.extend(_paragraphs(command.help or ""))
        options = _options(ctx, command)
        if options is not None:
            section += options
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    section.extend(self._section(sub, click.Context(sub, ctx, info_name=name)))
        self.state.document.note_implicit_target(section)
        return [section]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("click-commands", ClickCommands)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

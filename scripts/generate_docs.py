"""Write every generated documentation page; ``--check`` exits 1 when a page on disk differs.

Generated, never copied by hand:

- ``docs/reference/cli.md``: the command-line reference, read from the Typer app (``uasbench.cli:app``)
  through ``typer.main.get_command``: every command and subcommand, its arguments and options with their
  types, defaults and help.
- The leaderboard blocks of ``docs/results.md`` and the headline block of ``README.md``: each sits between
  ``<!-- generated: uasbench leaderboard RESULTS ARGS [| block TITLE] -->`` and ``<!-- /generated -->``,
  and is that command's Markdown output (only its block whose bold title starts with TITLE, when given).
  The runs behind the published tables are not in the repository, so ``docs/results.md`` is their record:
  without ``--results`` its blocks are kept as recorded and the README's headline is checked against them;
  with ``--results DIR`` every block is produced again by running the command on ``DIR``.

Usage: ``python scripts/generate_docs.py [--check] [--results DIR]``.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"
RESULTS_PAGE = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
RECORDED_RESULTS = "results/phantom-quick"  # the folder name the recorded commands were run on

BLOCK = re.compile(r"(<!-- generated: (?P<command>[^|>]+?)(?: \| block (?P<title>[^>]+?))? -->\n)"
                   r"(?P<body>.*?)(<!-- /generated -->)", re.DOTALL)


# -- the command-line reference -------------------------------------------------------------------------
def _annotation(param: Any) -> Any:
    """The parameter's Python type: recent typer versions keep it on the parameter, older ones only on click's type."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        kind = descriptor.annotation
        return typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind
    return {"integer": int, "float": float, "boolean": bool, "path": Path, "text": str}.get(param.type.name, str)


def _bound(param: Any, side: str) -> Any:
    value = getattr(param, side, None)
    return value if value is not None else getattr(getattr(param, "type", None), side, None)


def _type_name(param: Any) -> str:
    """The value a parameter takes, in words that depend on neither the terminal nor the typer version."""
    if getattr(param, "is_flag", False):
        return "flag"
    kind = _annotation(param)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return " \\| ".join(f"`{member.value}`" for member in kind)
    name = {int: "integer", float: "number", bool: "boolean", Path: "path", str: "text"}.get(kind, str(kind))
    low, high = _bound(param, "min"), _bound(param, "max")
    bounds = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
    return " ".join([name, " and ".join(b for b in bounds if b)]).strip()


def _default(param: Any) -> str:
    value: Any = param.default
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        return "on" if value else "off"
    if value is None or value == [] or value == ():
        return "—"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _is_argument(param: Any) -> bool:
    return param.param_type_name == "argument"


def _metavar(param: Any) -> str:
    return param.metavar or param.name.upper()


def _names(param: Any) -> str:
    if _is_argument(param):
        return f"`{_metavar(param)}`"
    names = " / ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    return names + (" (repeatable)" if param.multiple else "")


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _cell(text: str | None) -> str:
    """One line of Markdown text; ``<ID>`` in a help text stays text, not an HTML tag."""
    return " ".join((text or "").split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _command_section(path: list[str], command: Any, depth: int) -> list[str]:
    lines = [f"{'#' * depth} `{' '.join(path)}`", ""]
    if command.help:
        lines += [_cell(command.help), ""]
    params = [p for p in command.params if p.name != "help" and not getattr(p, "hidden", False)]
    if _is_group(command):
        usage = [*path, "COMMAND", "[ARGS]..."]
    else:
        usage = [*path, *(_metavar(p) if p.required else f"[{_metavar(p)}]" for p in params if _is_argument(p))]
        usage += ["[OPTIONS]"] if any(not _is_argument(p) for p in params) else []
    lines += ["```", " ".join(usage), "```", ""]
    if params:
        lines += ["| argument / option | type | default | description |", "|---|---|---|---|"]
        lines += [f"| {_names(p)} | {_type_name(p)} | {_default(p)} | {_cell(getattr(p, 'help', None))} |"
                  for p in params]
        lines.append("")
    if _is_group(command):
        for name in sorted(command.commands):
            lines += _command_section([*path, name], command.commands[name], depth + 1)
    return lines


def cli_page() -> str:
    from uasbench.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command line", "",
             "<!-- Generated by scripts/generate_docs.py from uasbench.cli:app; do not edit by hand. -->", "",
             _cell(root.help), "",
             "Every command below is `uasbench COMMAND --help` in a table. Bad input ends with one `error:` line "
             "naming the option, value, file or folder at fault (see [Error messages](errors.md)).", "",
             "Commands: " + ", ".join(f"[`{n}`](#uasbench-{n})" for n in sorted(root.commands)) + ".", ""]
    for name in sorted(root.commands):
        lines += _command_section(["uasbench", name], root.commands[name], 2)
    return "\n".join(lines).rstrip() + "\n"


# -- leaderboard blocks -------------------------------------------------------------------------------
def _blocks(markdown: str) -> list[tuple[str, str]]:
    """A leaderboard's Markdown output split into (bold title, text) blocks."""
    found: list[tuple[str, list[str]]] = []
    for line in markdown.splitlines():
        title = re.fullmatch(r"\*\*(.+)\*\*", line.strip())
        if title:
            found.append((title.group(1), []))
        if found:
            found[-1][1].append(line)
    return [(title, "\n".join(lines).strip() + "\n") for title, lines in found]


def leaderboard_block(command: str, title: str | None, results: Path) -> str:
    """Run one recorded ``uasbench leaderboard`` command on ``results`` and keep the block it names."""
    from uasbench.cli import app

    words = shlex.split(command)
    if words[:2] != ["uasbench", "leaderboard"] or len(words) < 3:
        raise SystemExit(f"generated block {command!r}: only `uasbench leaderboard RESULTS ...` is supported")
    outcome = CliRunner().invoke(app, ["leaderboard", str(results), *words[3:]])
    if outcome.exit_code != 0:
        raise SystemExit(f"{command} on {results} failed: {outcome.output.strip()}")
    if title is None:
        return outcome.stdout.strip() + "\n"
    chosen = [text for name, text in _blocks(outcome.stdout) if name == title]
    if len(chosen) != 1:
        raise SystemExit(f"{command}: {len(chosen)} blocks titled {title!r} in its output on {results}")
    return chosen[0]


def fill_blocks(text: str, source: dict[tuple[str, str | None], str]) -> str:
    """``text`` with the body of every generated block replaced by ``source[(command, title)]``."""
    def body(match: re.Match[str]) -> str:
        key = (match["command"].strip(), match["title"])
        if key not in source:
            raise SystemExit(f"no recorded output for generated block {key[0]!r} (block {key[1]!r})")
        return match.group(1) + source[key] + match.group(5)
    return BLOCK.sub(body, text)


def recorded_blocks(text: str) -> dict[tuple[str, str | None], str]:
    return {(m["command"].strip(), m["title"]): m["body"] for m in BLOCK.finditer(text)}


def results_pages(results: Path | None) -> dict[Path, str]:
    """The results page and README, their blocks from ``results`` (or as recorded on the results page)."""
    page = RESULTS_PAGE.read_text(encoding="utf-8")
    recorded = recorded_blocks(page)
    if results is not None:
        recorded = {key: leaderboard_block(key[0], key[1], results) for key in recorded}
    return {RESULTS_PAGE: fill_blocks(page, recorded), README: fill_blocks(README.read_text(encoding="utf-8"), recorded)}


def generated_pages(results: Path | None = None) -> dict[Path, str]:
    return {CLI_PAGE: cli_page(), **results_pages(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    parser.add_argument("--results", type=Path, help=f"a results folder made like {RECORDED_RESULTS}: "
                                                     "regenerate the leaderboard blocks from it")
    args = parser.parse_args(argv)
    if args.results is not None and not args.results.is_dir():
        parser.error(f"--results {args.results}: no such folder")
    stale = []
    for path, text in generated_pages(args.results).items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}"
              + (" (run: python scripts/generate_docs.py)" if args.check else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

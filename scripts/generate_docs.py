"""Write every generated documentation page; ``--check`` exits 1 when a page on disk differs.

Generated, never copied by hand:

- ``docs/reference/cli.md``: the command-line reference, read from the Typer app (``uasbench.cli:app``)
  through ``typer.main.get_command``: every command and subcommand, its arguments and options with their
  types, defaults and help.
- The tables between ``<!-- generated table: NAME -->`` and ``<!-- /generated table -->`` (the prose around
  them is written by hand): ``benchmark-keys`` in ``docs/reference/benchmark-toml.md``, every key of the
  benchmark file from the dataclasses that check it (type from the hint, bounds from the field metadata,
  default, meaning from the field's comment and the help of the option it stands for); ``card-keys`` in
  ``docs/reference/dataset-card.md``, from ``uasbench.data.card.describe_keys()``; ``error-cases`` in
  ``docs/reference/errors.md``, every case of the bad-input matrix (``tests/test_bad_input_matrix.py``: its
  command line, exit code and message, grouped by command); ``tiny-profiles`` in ``docs/methods/index.md``.
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
import ast
import dataclasses
import inspect
import io
import json
import os
import re
import shlex
import sys
import tempfile
import textwrap
import tokenize
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
    # typer versions that hand click a Choice of the values instead of keeping the Enum
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        return " \\| ".join(f"`{getattr(c, 'value', c)}`" for c in choices)
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
    # click >= 8.3 may hold its own "unset" placeholder (an Enum of click's) where older versions hold None
    if value is None or value == [] or value == () or type(value).__module__.startswith("click"):
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


# -- key tables: the benchmark file and the dataset card, from the dataclasses that check them -------------
TABLE_BLOCK = re.compile(r"(<!-- generated table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated table -->)",
                         re.DOTALL)


def _field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` written on a dataclass field's lines in its source, by field name."""
    source = textwrap.dedent(inspect.getsource(cls))
    spans = {node.target.id: (node.lineno, node.end_lineno) for node in ast.parse(source).body[0].body
             if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    comments: dict[str, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and "type: ignore" not in token.string:
            for name, (first, last) in spans.items():
                if first <= token.start[0] <= (last or first):
                    comments[name] = (comments.get(name, "") + " " + token.string.lstrip("# ")).strip()
    return comments


def _toml_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple):
        value = list(value)
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def _options(command: str) -> dict[str, Any]:
    """The options of ``uasbench COMMAND`` by their long name."""
    from uasbench.cli import app

    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    return {opt: p for p in params for opt in getattr(p, "opts", [])}


def _key_rows(cls: type, table: str, bounds_from: dict[str, dataclasses.Field] | None = None,
              command: str | None = None) -> list[str]:
    """One Markdown row per field of ``cls``: key, what it takes (hint and bounds, as the checker says it),
    default, meaning (the field's ``help`` metadata or its source comment, and the help of the option of
    ``uasbench COMMAND`` that the key stands for)."""
    from uasbench.config_check import _BOUNDS, _describe, type_hints

    hints, comments, rows = type_hints(cls), _field_comments(cls), []
    options = _options(command) if command else {}
    for f in dataclasses.fields(cls):
        source = (bounds_from or {}).get(f.name, f)
        bounds = {k: v for k, v in source.metadata.items() if k in _BOUNDS}
        takes = f.metadata.get("expected") or _describe(hints[f.name], bounds)
        if f.default is not dataclasses.MISSING:
            default = _toml_value(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = _toml_value(f.default_factory())  # type: ignore[misc]
        else:
            default = "required"
        meaning = f.metadata.get("help") or comments.get(f.name, "")
        option = f.metadata.get("option") or "--" + f.name.replace("_", "-")
        if option in options and options[option].help:
            meaning = f"{meaning}{'; ' if meaning else ''}as `uasbench {command} {option}`: {options[option].help}"
        if source is not f:
            meaning = (meaning + f" Bounded as `{source.metadata['option']}` is.").strip()
        rows.append(f"| `{table}.{f.name}` | {_cell(takes)} | {default} | {_cell(meaning)} |")
    return rows


def benchmark_keys() -> str:
    from uasbench.benchmark import config
    from uasbench.evaluation.postprocess import PostProcess

    post = {f.name: f for f in dataclasses.fields(PostProcess)}
    sections = [("benchmark", "[benchmark]", config.BenchmarkTable,
                 {"erode_brain": post["erode_brain_px"], "median": post["median_size"]}, "run"),
                ("grid", "[[grid]]", config.GridTable, None, None),
                ("slurm", "[slurm]", config.SlurmSettings, None, "benchmark")]
    headings = {table: heading for table, heading, *_ in sections}
    lines = ["| table | what it holds |", "|---|---|"]
    lines += [f"| `{headings.get(f.name, f'[{f.name}.METHOD]')}` | {_cell(f.metadata.get('expected', ''))} |"
              for f in dataclasses.fields(config.BenchmarkFile)]
    for table, heading, cls, bounds, command in sections:
        lines += ["", f"### `{heading}`", "", _cell(inspect.getdoc(cls)), "",
                  "| key | accepts | default | meaning |", "|---|---|---|---|",
                  *_key_rows(cls, table, bounds, command)]
    return "\n".join(lines) + "\n"


def card_keys() -> str:
    from uasbench.data.card import describe_keys

    rows = [f"| `{key}` | {_cell(takes)} | `{default}` | {_cell(meaning)} |"
            for key, takes, default, meaning in describe_keys()]
    return "\n".join(["| key | accepts | default | meaning |", "|---|---|---|---|", *rows]) + "\n"


# -- the error-message list, from the bad-input matrix ------------------------------------------------------
def _sandbox_world(matrix: Any, root: Path) -> Any:
    """A World of the matrix with the folders and files its cases' builders read, empty: enough to build
    every case's command line (the builders' own preparations run here and are thrown away)."""
    data, run = root / "data", root / "results" / "RUN"
    trained_work = root / "trained" / ".work" / "ae_fl-t2_quick_s0_KEY"
    for folder in (data, run, trained_work, root / "readonly"):
        folder.mkdir(parents=True)
    (trained_work / "ckpt_ae.pt").write_bytes(b"")
    (trained_work / "run_identity.json").write_text('{"seed": 0}')
    for name in ("split.csv", "healthy_test.csv"):
        (root / name).write_text("subject,split\n")
    return matrix.World(root, data, root / "split.csv", root / "healthy_test.csv", run, root / "trained",
                        root / "readonly")


def bad_input_cases() -> list[dict[str, Any]]:
    """Every case of tests/test_bad_input_matrix.py (each of its lists named ``...CASES``): its id, command
    line (paths relative to the folder the test runs in), environment, whether it runs without write
    permission, exit code and message fragment."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import test_bad_input_matrix as matrix
    finally:
        sys.path.remove(str(ROOT / "tests"))
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        world = _sandbox_world(matrix, root)
        work_key = matrix._work_key
        matrix._work_key = lambda w, seed: f"ae_fl-t2_quick_s{seed}_KEY"  # the real key needs real data
        try:
            lists = [value for key, value in vars(matrix).items() if key.endswith("CASES") and isinstance(value, list)]
            for name, build, code, message in [case for cases_list in lists for case in cases_list]:
                argv, env, unprivileged = build(world)
                show = lambda text: str(text).replace(f"{root}/", "").replace(str(root), ".")  # noqa: E731
                cases.append({"id": name, "argv": [show(a) for a in argv],
                              "env": {k: show(v) for k, v in env.items()}, "unprivileged": unprivileged,
                              "code": code, "message": message})
        finally:
            matrix._work_key = work_key
            for folder, _, _ in os.walk(root):
                os.chmod(folder, 0o755)
    return cases


def _command_of(argv: list[str]) -> str:
    return " ".join(argv[:2] if argv[0] == "data" else argv[:1])


def error_cases() -> str:
    """The matrix's cases grouped by command: the command line as the test runs it, the exit code, and the
    part of the one `error:` line that the test asserts."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for case in bad_input_cases():
        groups.setdefault(_command_of(case["argv"]), []).append(case)
    lines: list[str] = []
    for command in sorted(groups):
        lines += [f"### `uasbench {command}`", "", "| command line | exit | the `error:` line contains |",
                  "|---|---|---|"]
        for case in groups[command]:
            env = "".join(f"{k}={shlex.quote(v)} " for k, v in case["env"].items())
            shown = f"`{env}uasbench {shlex.join(case['argv'])}`".replace("|", "\\|")
            if case["unprivileged"]:
                shown += " (without write permission)"
            message = " ".join(case["message"].split()).replace("`", "'").replace("|", "\\|")
            lines.append(f"| {shown} | {case['code']} | `{message}` |")
        lines.append("")
    return "\n".join(lines)


# -- the built-in methods' tiny profiles ------------------------------------------------------------------
def tiny_profiles() -> str:
    """Each built-in method's ``tiny`` profile: the config fields it changes from ``paper``, as declared."""
    from uasbench.registry import method_infos
    from uasbench.testing import PROFILE

    rows = ["| method | `tiny` changes |", "|---|---|"]
    for name, info in sorted(method_infos().items()):
        if info.cls.__module__.split(".")[0] != "uasbench_methods":
            continue  # a plugin installed in this environment is not one of the built-in methods
        changes = ", ".join(f"`{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}`"
                            for k, v in info.cls.profiles[PROFILE].items())
        rows.append(f"| [`{name}`]({name}.md) | {changes or 'nothing (as paper)'} |")
    return "\n".join(rows) + "\n"


TABLES = {"benchmark-keys": benchmark_keys, "card-keys": card_keys, "error-cases": error_cases,
          "tiny-profiles": tiny_profiles}
BENCHMARK_PAGE = ROOT / "docs" / "reference" / "benchmark-toml.md"
CARD_PAGE = ROOT / "docs" / "reference" / "dataset-card.md"
ERRORS_PAGE = ROOT / "docs" / "reference" / "errors.md"
METHODS_PAGE = ROOT / "docs" / "methods" / "index.md"


def fill_tables(text: str) -> str:
    """``text`` with the body of every ``<!-- generated table: NAME -->`` block made again by ``TABLES[NAME]``."""
    def body(match: re.Match[str]) -> str:
        if match["name"] not in TABLES:
            raise SystemExit(f"unknown generated table {match['name']!r} (known: {', '.join(TABLES)})")
        return match.group(1) + TABLES[match["name"]]() + match.group(4)
    return TABLE_BLOCK.sub(body, text)


def table_pages() -> dict[Path, str]:
    pages = (BENCHMARK_PAGE, CARD_PAGE, ERRORS_PAGE, METHODS_PAGE)
    return {page: fill_tables(page.read_text(encoding="utf-8")) for page in pages}


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
    return {CLI_PAGE: cli_page(), **table_pages(), **results_pages(results)}


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

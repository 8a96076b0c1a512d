"""Tables (``report.table``) as Markdown, LaTeX (booktabs), HTML or CSV: the one renderer of the text
leaderboards and the report page."""
from __future__ import annotations

import html

import pandas as pd

from uasbench.report import statistics as st
from uasbench.report.table import Cell, Table


def text(tables: list[Table], fmt: str) -> str:
    """Several tables in one output; CSV gets one table with a ``table`` column naming each (notes dropped)."""
    if fmt == "csv":
        frames = [t.frame().assign(table=t.title) for t in tables if t.header]
        return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""
    return "\n".join(table_text(t, fmt) for t in tables)


def csv(table: Table) -> str:
    return table.frame().to_csv(index=False)


def table_text(table: Table, fmt: str) -> str:
    """One table with its title and note as Markdown, LaTeX or HTML."""
    if table.ranked:
        return {"md": _ranked_markdown, "latex": _ranked_latex, "html": _ranked_html}[fmt](table)
    return _plain(table, fmt)


def tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("—", "---"), ("†", r"$^{\dagger}$")):
        text = text.replace(a, b)
    return text


def _marked(text: str, mark: str, bold: str, dagger: str) -> str:
    if mark == st.BEST:
        return bold.format(text)
    return text + dagger if mark == st.NOT_WORSE else text


def _ranked_markdown(table: Table) -> str:
    def cell(c: Cell) -> str:
        return _marked(f"{c.value} {c.ci}" if c.ci else str(c.value), c.mark, "**{}**", " †")

    lines = [f"**{table.title}**", "", "| " + " | ".join(table.header) + " |",
             "|---|" + "---:|" * (len(table.header) - 1)]
    for label, *cells in table.rows:
        lines.append(f"| {label.value} | " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines + ["", f"_{table.note}_", ""])


def _ranked_latex(table: Table) -> str:
    """A booktabs table (``\\usepackage{booktabs}``), CI in small type, ready to paste."""
    def cell(c: Cell) -> str:
        body = tex(str(c.value)) + (rf" {{\scriptsize {tex(c.ci)}}}" if c.ci else "")
        return _marked(body, c.mark, r"\textbf{{{}}}", r"$^{\dagger}$")

    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex(table.title)}}}",
             r"\begin{tabular}{l" + "r" * (len(table.header) - 1) + "}", r"\toprule",
             " & ".join(tex(h) for h in table.header) + r" \\", r"\midrule"]
    for label, *cells in table.rows:
        lines.append(tex(str(label.value)) + " & " + " & ".join(cell(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\par\footnotesize {tex(table.note)}", r"\end{table}", ""]
    return "\n".join(lines)


def _ranked_html(table: Table) -> str:
    """One block as plain HTML (no script); cells carry ``data-mark`` for styling and for tests."""
    def cell(c: Cell) -> str:
        body = _marked(html.escape(str(c.value)), c.mark, "<b>{}</b>", "<sup>†</sup>")
        return (f'<td data-mark="{c.mark}">{body}' + (f'<br><span class="ci">{html.escape(c.ci)}</span>' if c.ci else "")
                + "</td>")

    out = [f"<h3>{html.escape(table.title)}</h3>", "<table>", "<thead><tr>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr></thead>", "<tbody>"]
    for label, *cells in table.rows:
        out.append(f"<tr><th>{html.escape(str(label.value))}</th>" + "".join(cell(c) for c in cells) + "</tr>")
    out += ["</tbody>", "</table>", f'<p class="note">{html.escape(table.note)}</p>', ""]
    return "\n".join(out)


def _plain(table: Table, fmt: str) -> str:
    rows = [[c.value for c in row] for row in table.rows]
    if not table.header:
        body = ""
    elif fmt == "latex":
        header = " & ".join(tex(str(c)) for c in table.header)
        lines = [" & ".join(tex(str(v)) for v in r) + r" \\" for r in rows]
        body = "\n".join([r"\begin{tabular}{" + "l" * len(table.header) + "}", r"\toprule", header + r" \\",
                          r"\midrule", *lines, r"\bottomrule", r"\end{tabular}"])
    elif fmt == "html":
        body = table.frame().to_html(index=False, escape=True, na_rep="")
    else:
        body = "\n".join(["| " + " | ".join(map(str, table.header)) + " |",
                          "|" + "---|" * len(table.header),
                          *("| " + " | ".join(map(str, r)) + " |" for r in rows)])
    if fmt == "latex":
        return "\n".join([rf"\paragraph{{{tex(table.title)}}}", body, rf"\par\footnotesize {tex(table.note)}", ""])
    if fmt == "html":
        return f"<h4>{html.escape(table.title)}</h4>\n{body}\n<p class=\"note\">{html.escape(table.note)}</p>\n"
    return "\n".join([f"**{table.title}**", "", body, "", f"_{table.note}_", ""])

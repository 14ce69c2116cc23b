"""The agenda as a Word file, to journalise in SBSYS. Every word comes from the template
`da/agenda.docx.j2`; this module only turns its lines into Word structure:

    # text      heading, level 1          - text     bulleted paragraph
    ## text     heading, level 2          | a | b    a table row (adjacent rows: one table)
    text        a paragraph               (empty lines are skipped)
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from mailbot.delivery.compose import Renderer


def agenda_docx(renderer: Renderer, context: Mapping[str, Any]) -> bytes:
    """The DOCX bytes of the agenda rendered from `da/agenda.docx.j2` with `context`."""
    import docx  # python-docx loads lxml: only when an agenda is built

    markup = renderer.render_one("da", "agenda.docx.j2", context)
    document = docx.Document()
    table = None
    for line in markup.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if table is None:
                table = document.add_table(rows=0, cols=len(cells))
            row = table.add_row().cells
            for cell, text in zip(row, cells, strict=False):
                cell.text = text
            continue
        table = None
        if line.startswith("## "):
            document.add_heading(line[3:].strip(), level=2)
        elif line.startswith("# "):
            document.add_heading(line[2:].strip(), level=1)
        elif line.startswith("- "):
            document.add_paragraph(line[2:].strip(), style="List Bullet")
        elif line.strip():
            document.add_paragraph(line.strip())
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()

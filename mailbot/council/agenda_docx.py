"""The agenda as Word files, to paste into SBSYS and journalise there: the whole agenda
(`da/agenda.docx.j2`) and each item on its own (`da/agenda_item.docx.j2`). Every word comes
from the templates; this module only turns their lines into Word's own styles, so that a
heading stays a heading and a list a list when it is pasted into SBSYS's agenda item:

    # text      Heading 1                 - text           List Bullet
    ## text     Heading 2                 **Label:** text  Normal, the label in bold
    ### text    Heading 3                 | a | b          a table row (adjacent rows: one table)
    text        Normal                    \\text           Normal, the text as it is (free text
                                                           that may start with "#", "-" …)
    (empty lines are skipped)
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

from mailbot.delivery.compose import Renderer
from mailbot.redact import redact_cpr

_HEADING = re.compile(r"^(#{1,3}) (.*)$")
_LABELLED = re.compile(r"^\*\*(.+?)\*\*\s?(.*)$")


def agenda_docx(renderer: Renderer, context: Mapping[str, Any]) -> bytes:
    """The DOCX bytes of the whole agenda, `da/agenda.docx.j2` rendered with `context`
    (mailbot.council.agenda.AgendaContext). Raises ConfigError for a missing template."""
    return docx_bytes(renderer.render_one("da", "agenda.docx.j2", context))


def item_docx(renderer: Renderer, context: Mapping[str, Any], item: Mapping[str, Any]
              ) -> bytes:
    """The DOCX bytes of one agenda item, `da/agenda_item.docx.j2` rendered with the
    agenda's `context` and `item` (mailbot.council.agenda_item.AgendaItem)."""
    return docx_bytes(renderer.render_one("da", "agenda_item.docx.j2",
                                          {**context, "item": item}))


def docx_bytes(markup: str) -> bytes:
    """A Word document from the line markup in this module's docstring, CPR numbers
    redacted (SCENARIOS G1: the file goes to the secretary and into SBSYS)."""
    import docx  # python-docx loads lxml: only when an agenda is built

    document = docx.Document()
    table = None
    for line in redact_cpr(markup).splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if table is None:
                table = document.add_table(rows=0, cols=len(cells))
            row = table.add_row().cells
            for cell, text in zip(row, cells, strict=False):
                cell.text = text
            continue
        table = None
        heading, labelled = _HEADING.match(line), _LABELLED.match(line)
        if line.startswith("\\"):
            if line[1:].strip():
                document.add_paragraph(line[1:].strip())
        elif heading:
            document.add_heading(heading.group(2).strip(), level=len(heading.group(1)))
        elif line.startswith("- "):
            document.add_paragraph(line[2:].strip(), style="List Bullet")
        elif labelled:
            paragraph = document.add_paragraph()
            paragraph.add_run(labelled.group(1)).bold = True
            if labelled.group(2).strip():
                paragraph.add_run(" " + labelled.group(2).strip())
        elif line.strip():
            document.add_paragraph(line.strip())
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()

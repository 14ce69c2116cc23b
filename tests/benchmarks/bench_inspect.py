"""`inspect` time for a brief with four heavy attachments (prints figures; not a test).

    python tests/benchmarks/bench_inspect.py [--runs N]

Attachments: a 30-page PDF, a 20-page DOCX, an XLSX and a ZIP (holding a PDF and a DOCX),
all with names that say nothing, so their text must be read. Target: under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mailbot.intake.inspection import inspect_mail, settings_without_config  # noqa: E402
from mailbot.resources import shipped  # noqa: E402
from mailbot.rules import load_rules  # noqa: E402
from tests.docs import docx, with_attachments  # noqa: E402
from tests.mails import COMPLETE_BODY, brief  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    long_docx_body = "\n".join(f"Afsnit {i}. " + "Tekst om løsningen. " * 40 for i in range(400))
    specs = [
        {"filename": "Bilag 1.pdf", "type": "pdf", "title": "Teknisk beskrivelse", "pages": 30},
        {"filename": "Bilag 2.docx", "type": "docx", "title": "Udkast til kontrakt",
         "body": long_docx_body},
        {"filename": "Bilag 3.xlsx", "type": "xlsx", "title": "Business case"},
        {"filename": "Bilag 4.zip", "type": "zip", "members": [
            {"filename": "dokument.pdf", "type": "pdf", "title": "Databehandleraftale",
             "pages": 10},
            {"filename": "noter.docx", "type": "docx", "title": "Noter"}]},
    ]
    raw = with_attachments(brief(body=COMPLETE_BODY, attachments=()), specs)
    rules = load_rules(shipped("rules"))
    docx_kb = len(docx("x", long_docx_body)) // 1024
    print(f"mail of {len(raw) / 1024 / 1024:.1f} MB "
          f"(a 30-page PDF; a DOCX of 400 paragraphs, {docx_kb} KB)")
    settings = settings_without_config("bot@kommune.test")
    kinds = list(inspect_mail(raw, rules, settings)["documents"].values())
    print("kinds:", kinds)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        inspect_mail(raw, rules, settings)
        times.append(time.perf_counter() - started)
    print(f"inspect over {args.runs} runs: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()

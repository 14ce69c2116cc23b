"""Document kinds by content (issue 11, item 5): the title, the terms a kind defines and its
headings are scored, and a document that merely mentions another kind keeps its own kind.

Each variant is a real DOCX, PDF or ODT built here (tests/docs.py), with a name that says
nothing ("Bilag 2.docx"), and the kind a careful reader gives it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailbot.intake.parse import Attachment, parse
from mailbot.reading.brief import read_brief
from mailbot.reading.documents import classify, score_text
from mailbot.rules import Rules
from tests.docs import docx, odt, pdf
from tests.mails import brief

CONTRACT_DA = """Mellem Albertslund Kommune (Kunden) og Plejeteknik ApS (Leverandøren)
1. Parter
Parterne er Kunden og Leverandøren som nævnt ovenfor.
2. Leverancen
Leverancen omfatter standardsystemet RuteNet med tilpasninger som beskrevet i bilag 1.
3. Vederlag
Vederlaget udgør 180.000 kr. ekskl. moms for etablering og 40.000 kr. årligt for drift.
4. Personoplysninger
Leverandøren behandler personoplysninger om borgere og medarbejdere på vegne af Kunden.
Behandlingen sker efter databehandleraftalen, der er bilag 3 til denne kontrakt.
5. Ophør
Kontrakten kan opsiges med seks måneders varsel. Ved ophør tilbageleveres data.
6. Misligholdelse
Væsentlig misligholdelse giver den anden part ret til at hæve kontrakten.
Bilagsfortegnelse
Bilag 1 Kravspecifikation. Bilag 2 Tidsplan. Bilag 3 Databehandleraftale.
"""

CONTRACT_EN = """between Albertslund Municipality (the Customer) and Routeware Ltd (the Supplier)
The Parties
The parties to this agreement are the Customer and the Supplier.
Deliverables
The delivery comprises the RouteNet licence, configuration and training.
Fees and payment
The fees are DKK 180,000 for implementation and DKK 40,000 per year.
Personal data
The Supplier processes personal data as a data processor under the Data Processing
Agreement in Appendix 4.
Termination
Either party may terminate with six months' notice.
Breach
A material breach entitles the other party to terminate.
Limitation of liability
Governing law: Danish law.
"""

DPA_DA = """mellem Albertslund Kommune som dataansvarlig og Plejeteknik ApS som databehandler
Denne aftale er bilag 3 til kontrakten (hovedaftalen) mellem parterne om RuteNet.
Den dataansvarliges rettigheder og forpligtelser
Den dataansvarlige er ansvarlig for, at behandlingen sker i overensstemmelse med
databeskyttelsesforordningen, jf. artikel 28.
Databehandleren handler efter instruks
Databehandleren må kun behandle personoplysninger efter dokumenteret instruks.
Behandlingssikkerhed
Anvendelse af underdatabehandlere
Databehandleren må ikke gøre brug af en underdatabehandler uden forudgående godkendelse.
Overførsel af oplysninger til tredjelande
Overførsel til tredjelande sker kun efter Standardkontraktsbestemmelser.
Aftalens ophør
Ved aftalens ophør slettes alle personoplysninger.
"""

DPA_EN = """between Albertslund Municipality (the controller) and Routeware Ltd (the processor)
This agreement is Appendix 4 to the contract between the parties.
The controller's rights and obligations
The processor acts according to instructions
The data processor shall process personal data only on documented instructions.
Use of sub-processors
The processor shall not engage a sub-processor without prior authorisation.
Transfer of data to third countries
Transfers rely on the standard contractual clauses. Termination of the contract ends it.
"""

TECHNICAL = """Løsningen RuteNet
Arkitektur
RuteNet er en SaaS-løsning hostet i Azure i EU. Integration til omsorgssystemet sker via
et API, og brugerne logger på med single sign-on (SSO).
Integrationer
Backup tages dagligt, og der er logning af alle opslag.
Personoplysninger behandles efter databehandleraftalen, og kontrakten regulerer oppetiden.
"""

BUSINESS = """Økonomisk grundlag for RuteNet
Gevinster
Den forventede besparelse er 350.000 kr. om året i kørsel og planlægning.
Omkostninger
Investeringen er 180.000 kr., og kontraktens vederlag for drift er 40.000 kr. årligt.
Tilbagebetalingstiden er under et år, og gevinstrealiseringen følges af styregruppen.
"""

LETTER = """Følgebrev
Hej Rådet
Databehandleraftalen sender vi, når leverandøren har underskrevet den.
Mvh Åse
"""

Build = Callable[[str, str], bytes]


def _pdf(title: str, body: str) -> bytes:
    return pdf(title, body)


VARIANTS: list[tuple[str, Build, str, str, str]] = [
    # (file name, builder, title, body, expected kind)
    ("Bilag 2.docx", docx, "Kontrakt om levering af RuteNet", CONTRACT_DA, "contract_draft"),
    ("Bilag 2.pdf", _pdf, "Kontrakt om levering af RuteNet", CONTRACT_DA, "contract_draft"),
    ("Bilag 2.odt", odt, "Aftale om RuteNet", CONTRACT_DA, "contract_draft"),
    ("Appendix B.docx", docx, "Supply agreement - RouteNet", CONTRACT_EN, "contract_draft"),
    ("Appendix B.pdf", _pdf, "Supply agreement - RouteNet", CONTRACT_EN, "contract_draft"),
    ("Bilag 3.docx", docx, "Databehandleraftale", DPA_DA, "dpa_draft"),
    ("Bilag 3.pdf", _pdf, "Aftale om behandling af personoplysninger", DPA_DA, "dpa_draft"),
    ("Bilag 3.odt", odt, "Bilag 3", DPA_DA, "dpa_draft"),
    ("Appendix 4.docx", docx, "Data Processing Agreement", DPA_EN, "dpa_draft"),
    ("Appendix 4.pdf", _pdf, "Appendix 4", DPA_EN, "dpa_draft"),
    ("Bilag 1.docx", docx, "Løsningsoversigt", TECHNICAL, "technical_description"),
    ("Bilag 4.docx", docx, "Bilag 4", BUSINESS, "business_case"),
    ("Bilag 5.pdf", _pdf, "Bilag 5", LETTER, "other"),
    # a name that names two kinds: the text decides between them
    ("Kontrakt inkl. databehandleraftale.docx", docx, "Kontrakt om levering af RuteNet",
     CONTRACT_DA, "contract_draft"),
    ("Databehandleraftale til kontrakt.pdf", _pdf, "Databehandleraftale", DPA_DA, "dpa_draft"),
]


@pytest.mark.parametrize(("name", "build", "title", "body", "expected"), VARIANTS,
                         ids=[v[0] + "-" + v[4] for v in VARIANTS])
def test_kind_by_content(rules: Rules, name: str, build: Build, title: str, body: str,
                         expected: str) -> None:
    [reading] = classify(Attachment(name, "application/octet-stream", build(title, body),
                                    False), rules)
    assert reading.kind == expected, reading.note


def test_a_mention_is_weaker_than_the_terms(rules: Rules) -> None:
    text = "Kontrakt om RuteNet\n" + CONTRACT_DA
    scores = {s.kind: s for s in score_text(text, rules)}
    assert scores["contract_draft"].points > 2 * scores["dpa_draft"].points
    assert "mention" in scores["dpa_draft"].found


def test_the_note_says_why(rules: Rules) -> None:
    [reading] = classify(Attachment("Bilag 2.docx", "application/octet-stream",
                                    docx("Kontrakt om levering af RuteNet", CONTRACT_DA),
                                    False), rules)
    assert reading.note.startswith("document text: contract_draft")
    assert "over dpa_draft" in reading.note


def test_the_contract_that_mentions_a_dpa_is_not_taken_for_one(rules: Rules) -> None:
    """The mail of the issue: the contract draft mentions personal data and names the data
    processing agreement as its appendix; the applicant must not be told the contract is
    missing, and the DPA reviewer must not get the contract."""
    raw = brief(attachments=("Teknisk beskrivelse.pdf", "Business case.docx"))
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(docx("Udkast", "Kontrakt om levering af RuteNet\n" + CONTRACT_DA),
                       maintype="application", subtype="octet-stream", filename="Udkast.docx")
    msg.add_attachment(pdf("Bilag 3", DPA_DA), maintype="application", subtype="octet-stream",
                       filename="Bilag 3.pdf")
    reading = read_brief(parse(msg.as_bytes()), rules)
    kinds = {d.filename: d.kind for d in reading.documents}
    assert kinds["Udkast.docx"] == "contract_draft"
    assert kinds["Bilag 3.pdf"] == "dpa_draft"
    assert reading.missing == ()

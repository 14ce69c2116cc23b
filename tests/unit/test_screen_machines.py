"""Issue 11 item 6, automatic replies: the markers that mail systems set instead of
Auto-Submitted, and automatic replies with no header at all, recognised by subject and body.
Each kind in several variants (Danish and English, text and HTML); the expected value is the
reading a careful person makes. A person's brief that merely mentions "automatisk" stays a
person's mail."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from mailbot.config import Settings
from mailbot.intake.classify import MachineMail, NewBrief, classify
from mailbot.intake.inspection import inspect_mail, settings_without_config
from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import find_thread, ref_in_subject
from mailbot.rules import Rules
from tests.conftest import shared_path
from tests.mails import COMPLETE_BODY, brief

BOT = "it.projekter@kommune.test"


def category(raw: bytes, rules: Rules) -> str:
    return screen(parse(raw), rules, BOT).category


def html_mail(subject: str, html: str, headers: dict[str, str] | None = None,
              sender: str = "Karin Dahl <karin.dahl@kommune.test>") -> bytes:
    """An HTML-only mail, as web mail and ticket systems send them."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = BOT
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Mar 2026 10:15:00 +0100"
    msg["Message-ID"] = "<auto-html@kommune.test>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(html, subtype="html")
    return msg.as_bytes()


# -- headers that autoresponders, inbox rules, ticket systems and lists set ---------------
@pytest.mark.parametrize(("headers", "expected"), [
    ({"Precedence": "auto_reply"}, "auto_reply"),
    ({"Precedence": "Auto_Reply"}, "auto_reply"),
    ({"X-Loop": "helpdesk@leverandoer.example"}, "loop"),
    ({"X-MS-Exchange-Inbox-Rules-Loop": "jonas.friis@kommune.test"}, "loop"),
    ({"X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent"}, "loop"),
    ({"X-OTRS-Loop": "yes"}, "loop"),
    ({"RT-Loop-Prevention": "kommune.test"}, "loop"),
    ({"X-Auto-Response-Suppress": "All"}, "human"),
    ({"X-Auto-Response-Suppress": "DR, RN, NRN, OOF, AutoReply",
      "Thread-Index": "AdqNk1v3", "X-MS-Has-Attach": "yes"}, "human"),
], ids=lambda value: str(value)[:40])
def test_machine_headers(rules: Rules, headers: dict[str, str], expected: str) -> None:
    raw = brief(subject="Re: [ITP-2026-0031] Anmodning om review", headers=headers)
    assert category(raw, rules) == expected


@pytest.mark.parametrize("sender", ["no-reply@sbsys.kommune.test", "NoReply@leverandoer.example",
                                    "ikke-svar@borger.dk", "donotreply@portal.example"])
def test_reply_to_nobody_senders_are_machines(rules: Rules, sender: str) -> None:
    assert category(brief(sender=sender, attachments=()), rules) == "auto_reply"


def test_an_exchange_inbox_rule_reply_on_a_case_is_recorded_not_a_verdict(
        rules: Rules) -> None:
    """An inbox rule answering our review request: the case is named, nothing is read from it."""
    raw = brief(sender="Jonas Friis <jonas.friis@kommune.test>", attachments=(),
                subject="SV: [ITP-2026-0031] Anmodning om review: RuteNet",
                body="Tak for din mail. Den er modtaget og godkendt til videre behandling.\n",
                headers={"X-MS-Exchange-Inbox-Rules-Loop": "jonas.friis@kommune.test",
                         "In-Reply-To": "<review-1@kommune.test>"})
    settings = settings_without_config(BOT)
    reading = inspect_mail(raw, rules, settings)
    assert reading == {"kind": "auto_reply", "case_ref": "ITP-2026-0031"}


# -- no automation header: recognisably automatic by subject ------------------------------
@pytest.mark.parametrize("subject", [
    "SV: Automatisk svar: Projektforslag",
    "Autosvar - Projektforslag: RuteNet",
    "Kvittering for modtagelse af din henvendelse",
    "Vi har modtaget din henvendelse (sag 2026-118)",
    "We have received your request [#48213]",
    "Your ticket has been received",
    "Automatically generated: delivery of your message",
    "RE: Out of Office: Projektforslag",
])
def test_automatic_subjects(rules: Rules, subject: str) -> None:
    assert category(brief(subject=subject, attachments=(), body="Hej\n"), rules) == "auto_reply"


# -- no automation header: recognisably automatic by the top of a short body --------------
AUTOMATIC_BODIES = {
    "da-genereret": "Dette er en automatisk genereret mail. Svar venligst ikke på denne mail.\n\n"
                    "Med venlig hilsen\nDigitaliseringsenheden\n",
    "da-svar-ikke": "Kære afsender\n\nTak for din besked. Svar venligst ikke på denne mail, da "
                    "postkassen ikke overvåges.\n",
    "da-sagsnummer": "Vi har modtaget din henvendelse og behandler den hurtigst muligt.\n"
                     "Din henvendelse har fået sagsnummer 2026-004211.\n\nServicedesk\n",
    "da-besked-sendt": "Denne besked er sendt automatisk fra Leverandørportalen.\n",
    "da-ferie": "Tak for din mail.\n\nJeg er på ferie til og med 14. april og læser ikke mails "
                "i den periode. Har det hast, så kontakt sekretariatet.\n\nKarin Dahl\n",
    "da-fravaer-first-line": "Fraværsmeddelelse\nJeg er tilbage mandag.\n",
    "en-automated": "This is an automated message. Please do not reply to this email.\n",
    "en-ticket": "Hello,\n\nWe have received your request and a member of our team will "
                 "respond shortly. Your ticket number is 48213.\n\nSupport team\n",
    "en-out-of-office": "Out of office\n\nI am out of the office until Monday 9 March with "
                        "limited access to email.\n",
    "en-holiday": "Thank you for your email. I'm on holiday and will not be checking email. "
                  "For anything urgent, please contact the service desk.\n",
    "en-generated": "Hi,\n\nThis email was generated automatically by the procurement system.\n",
}


@pytest.mark.parametrize("name", sorted(AUTOMATIC_BODIES))
def test_automatic_bodies_as_text(rules: Rules, name: str) -> None:
    raw = brief(subject="Re: Projektforslag: RuteNet", attachments=(),
                body=AUTOMATIC_BODIES[name] + "\n> Hej, her er vores forslag …\n")
    assert category(raw, rules) == "auto_reply"


@pytest.mark.parametrize("name", ["da-genereret", "da-sagsnummer", "en-ticket", "en-automated",
                                  "da-ferie"])
def test_automatic_bodies_as_html(rules: Rules, name: str) -> None:
    paragraphs = "".join(f"<p>{p}</p>" for p in AUTOMATIC_BODIES[name].split("\n") if p)
    raw = html_mail("Re: Projektforslag", f"<html><body>{paragraphs}</body></html>")
    assert category(raw, rules) == "auto_reply"


def test_an_automatic_reply_on_a_case_is_recorded_never_answered(rules: Rules) -> None:
    raw = brief(subject="SV: [ITP-2026-0031] Anmodning om review", attachments=(),
                body=AUTOMATIC_BODIES["da-ferie"])
    mail = parse(raw)
    settings = Settings.model_validate({"bot": {"address": BOT},
                                        "imap": {"host": "-", "username": "-", "password": ""},
                                        "smtp": {"host": "-"}})
    thread = find_thread(mail, "kommune.test", b"")
    disposition = classify(mail, screen(mail, rules, BOT), thread, settings, rules,
                           None)
    assert isinstance(disposition, MachineMail) and disposition.case_ref == "ITP-2026-0031"


# -- people's mail that only mentions such things stays a person's ------------------------
PERSON_BODIES = {
    "brief-about-automatic-mail": "Hej\n\nVi søger om et system, der sender en automatisk "
                                  "genereret mail til borgeren, når en sag skifter status.\n\n"
                                  + COMPLETE_BODY,
    "brief-automatisk-everywhere": COMPLETE_BODY.replace(
        "Dobbeltbookinger i dag.", "Dobbeltbookinger i dag; lokalerne skal frigives "
        "automatisk, og svar venligst på spørgsmål via Teams."),
    "reviewer-on-holiday-approves": "Jeg er på ferie til og med fredag, men jeg har læst "
                                    "forslaget: godkendt fra min side.\n\nJonas\n",
    "reviewer-out-of-office-system": "Vi har ingen indvendinger. Leverandørens out-of-office-"
                                     "funktion er ikke relevant her. Godkendt.\n",
    "brief-ticket-system": "Hello\n\nWe would like a ticket system where citizens get an "
                           "automated message with a case number when we have received "
                           "their request.\n\n" + COMPLETE_BODY,
    "long-brief-quoting-a-receipt": COMPLETE_BODY + "\n" + "Uddybning. " * 200
                                    + "\nDette er en automatisk genereret mail.\n",
}


@pytest.mark.parametrize("name", sorted(PERSON_BODIES))
def test_people_who_mention_automation_are_people(rules: Rules, name: str) -> None:
    raw = brief(subject="Projektforslag: statusmails til borgerne", attachments=(),
                body=PERSON_BODIES[name])
    assert category(raw, rules) == "human"


@pytest.mark.parametrize("subject", [
    "Automatisk svar på borgerhenvendelser – nyt projekt",
    "Projektforslag: automatisk genereret mødereferat",
    "Out of office-kalender i Outlook",
    "Fraværende medarbejdere: nyt registreringssystem",
    "Kvittering for modtagelse skal digitaliseres",
])
def test_subjects_about_automation_are_briefs(rules: Rules, subject: str) -> None:
    raw = brief(subject=subject)
    mail = parse(raw)
    assert screen(mail, rules, BOT).category == "human"
    settings = settings_without_config(BOT)
    assert isinstance(classify(mail, screen(mail, rules, BOT),
                               find_thread(mail, "kommune.test", b""), settings, rules, None),
                      NewBrief)


def test_brief_with_documents_is_never_read_as_automatic_by_body(rules: Rules) -> None:
    raw = brief(body="Dette er en automatisk genereret mail fra selvbetjeningen.\n\n"
                + COMPLETE_BODY)
    assert category(raw, rules) == "human"


def test_public_bug_precedence_auto_reply(rules: Rules) -> None:
    path = shared_path("cases", "public-bugs", "08-precedence-auto-reply-only.eml")
    reading = inspect_mail(path.read_bytes(), rules, settings_without_config(
        "it.projekter@albertslund.dk"))
    assert reading["kind"] == "auto_reply" and reading["case_ref"] == "ITP-2026-0031"
    assert "verdict" not in reading


# -- issue 11, trial 11: the subject and body never overrule a mail that reads as a brief -------
# A person's brief is a person's mail whatever phrase it holds: six labelled answers, or a prose
# brief the prose reader answers, opens a case even when a sentence in it, or its subject,
# sounds like an autoresponder. Only the autoresponder's own forms count: "Automatisk svar:" +
# the original subject, a sentence of its own that says the mail is automatic.
LABELLED_DA = """Hvem: Lone Bech, skoleleder; brugerne er 35 lærere på Herstedlund Skole.
Hvad: Et nyt system til vikardækning.
Hvor: Herstedlund Skole, Skole og Dagtilbud.
Hvornår: Fra skolestart i august 2027.
Hvorfor: Vikarerne bookes i dag på sms, og det tager en time hver morgen.
Hvor meget: 40.000 kr. om året, betales af skolens budget.
"""
LABELLED_EN = """Who: Jens Lund, team lead; the users are 25 caseworkers in Jobcenter.
What: A new app for booking interpreters.
Where: Jobcenter, Beskæftigelse.
When: In operation from 1 October 2027.
Why: Interpreters are booked by phone today and bookings get lost.
How much: DKK 35,000 a year, paid by Jobcenter.
"""

PERSONS_MAIL: dict[str, tuple[str, str, bool]] = {
    # name: (subject, body, as HTML)
    "da-prose-dette-er-et-automatisk-system": (
        "Adgangskontrol til materielgården",
        "Hej\n\nDette er et automatisk adgangssystem til materielgården, som vi gerne vil "
        "anskaffe. Kontaktperson er Bo Winther, og brugerne er de 80 medarbejdere i Vej og "
        "Park.\nDet hører til i Center for Miljø og Teknik. Vi vil gerne i drift 1. juni "
        "2027.\nFormålet er at undgå bortkomne nøgler. Det koster 60.000 kr. og betales af "
        "Vej og Park.\n\nHilsen Bo\n", False),
    "da-labelled-quotes-svar-ikke-in-quotation-marks": (
        "Ny løsning til borgerpost",
        "Hej\n\n" + LABELLED_DA.replace(
            "det tager en time hver morgen.",
            "forældrene får en mail med «Svar venligst ikke på denne mail», som de alligevel "
            "svarer på. Dette er en automatisk genereret mail, står der også.") + "\nLone\n",
        False),
    "da-holiday-note-on-top-html": (
        "Vikardækning",
        "Hej\n\nInden jeg går: jeg er på ferie i uge 7 og læser ikke mails, så har det hast, "
        "kontakt min souschef.\n\n" + LABELLED_DA + "\nLone\n", True),
    "en-holiday-note-on-top": (
        "Interpreter booking",
        "Hi\n\nI'm on holiday next week with limited access to email, so if anything is "
        "urgent, call my colleague Sara.\n\n" + LABELLED_EN + "\nJens\n", False),
    "en-prose-automatic-reply-system": (
        "Citizen mail assistant",
        "Hi,\n\nThis is an automatic reply system for Borgerservice that we would like to buy. "
        "I am the contact person (Nadia Holm), and the users are our 20 caseworkers in "
        "Borgerservice.\nWe expect to go live in week 10 2027. The licence costs DKK 48,000 "
        "a year, paid by Borgerservice, because we answer 400 mails a week by hand.\n\nNadia\n",
        False),
    "da-subject-automatisk-svar-dash": (
        "Automatisk svar – chatbot til Borgerservice", "Hej\n\n" + LABELLED_DA, False),
    "da-subject-autoresponder-form-html": (
        "Automatisk svar: robot til journalisering", "Hej\n\n" + LABELLED_DA, True),
    "en-subject-out-of-office-planner": (
        "Out of office planner for Jobcenter", "Hi\n\n" + LABELLED_EN, False),
    "en-subject-out-of-office-colon-html": (
        "Out of Office: absence planner for Jobcenter", "Hi\n\n" + LABELLED_EN, True),
    "da-subject-fravaerende-colon": (
        "Fraværende: nyt system til fraværsregistrering", "Hej\n\n" + LABELLED_DA, False),
    "en-brief-mentions-this-is-an-automated-message": (
        "Notifications for citizens",
        "Hi\n\n" + LABELLED_EN.replace(
            "bookings get lost.", "bookings get lost. This is an automated message problem: "
            "citizens reply to it anyway.") + "\nJens\n", False),
}


def _raw(subject: str, body: str, as_html: bool) -> bytes:
    if not as_html:
        return brief(subject=subject, body=body, attachments=())
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n") if p)
    return html_mail(subject, f"<html><body>{paragraphs}</body></html>")


@pytest.mark.parametrize("name", sorted(PERSONS_MAIL))
def test_a_mail_that_reads_as_a_brief_opens_a_case(rules: Rules, name: str) -> None:
    mail = parse(_raw(*PERSONS_MAIL[name]))
    screened = screen(mail, rules, BOT)
    assert screened.category == "human", screened.reason
    disposition = classify(mail, screened, find_thread(mail, "kommune.test", b""),
                           settings_without_config(BOT), rules, None)
    assert isinstance(disposition, NewBrief)


@pytest.mark.parametrize("body", [
    "Hej\n\nVi har fået en mail med teksten «Dette er en automatisk genereret mail» fra jeres "
    "system. Er det meningen?\n\nKarin\n",
    'Hej\n\nBorgerne skriver at de fik "Svar venligst ikke på denne mail" fra os. Kan I se '
    "på det?\n\nKarin\n",
    "Hi\n\nWe got a reply saying \u201cThis is an automated message\u201d from your portal. Is "
    "that right?\n\nKarin\n",
    "Hej\n\nDette er et automatisk bookingsystem, vi overvejer. Har I erfaringer?\n\nKarin\n",
])
def test_a_quoted_phrase_is_not_the_mails_own_statement(rules: Rules, body: str) -> None:
    assert category(brief(subject="Spørgsmål", body=body, attachments=()), rules) == "human"


MACHINES: dict[str, tuple[str, str, bool]] = {
    "da-automatisk-svar-sentence": (
        "Projektforslag", "Dette er et automatisk svar. Jeg er tilbage 3. marts.\n", False),
    "da-subject-colon-html": ("Automatisk svar: Projektforslag: RuteNet", "Hej\n", True),
    "en-whole-subject": ("Out of Office", "Back on Monday.\n", False),
    "da-fravaerende-colon": ("Fraværende: Projektforslag: RuteNet", "Tilbage mandag.\n", False),
    "en-notification-from": (
        "Your supplier account", "This is an automatic notification from the procurement "
        "portal.\n", True),
    # an absence note that names a department and a date is still not a brief
    "da-ooo-with-department-and-date": (
        "SV: Projektforslag",
        "Jeg er på kursus til og med 12. maj i Center for Miljø og Teknik og læser ikke mails. "
        "Har det hast, så kontakt min kollega Ole Berg på 43 68 68 68.\n", False),
    # an autoresponder that quotes the brief it answers: the quote is not its own brief
    "da-autoreply-quoting-a-brief": (
        "Automatisk svar: Vikardækning",
        "Jeg er på ferie og læser ikke mails.\n\n"
        + "".join(f"> {line}\n" for line in LABELLED_DA.splitlines()), False),
}


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_autoresponders_own_forms_stay_machines(rules: Rules, name: str) -> None:
    mail = parse(_raw(*MACHINES[name]))
    assert screen(mail, rules, BOT).category == "auto_reply"


# -- issue 11, trial 11c: two signals together outweigh what an out-of-office text seems to say --
# An out-of-office text names a colleague, a date and the project ("I am on parental leave until
# 1 August 2026 … contact Rasmus Friis about the course registration platform"), which the brief
# reader may take for three answers. An autoresponder's subject together with an automatic body,
# or the autoresponder's marker in front of our own case reference, is a machine all the same.
# Another system's receipt ("Tak for din henvendelse … sagsnummer #48213") is a machine too.
OUT_OF_OFFICE_ON_A_CASE: dict[str, tuple[str, str, bool]] = {
    "en-parental-leave-names-colleague-and-date": (
        "Automatic reply: [ITP-2026-0140] Vi har modtaget jeres projektforslag",
        "Thank you for your message.\n\nI am on parental leave until 3 August 2026 and will not "
        "be reading my email. For anything about the booking platform for the libraries, "
        "please contact my colleague Ida Marker, team lead in Borgerservice, at "
        "ida.marker@kommune.test.\n\nBest regards,\nPeter\n", False),
    "da-barselsorlov-html": (
        "Automatisk svar: [ITP-2026-0141] Anmodning om vurdering: Vagtplan",
        "Tak for din mail.\n\nJeg er på barselsorlov frem til 1. juni 2027 og læser ikke mails. "
        "Spørgsmål om det nye vagtplanmodul til Hjemmeplejen kan rettes til min kollega, "
        "teamleder Jonna Kvist, som er kontaktperson i min fravær.\n\nMvh Signe\n", True),
    # the marker in front of our reference decides even when the body says nothing automatic
    "da-marker-before-ref-plain-body": (
        "Fraværsbesked: [ITP-2026-0142] Vi har modtaget jeres projektforslag",
        "Hej\n\nJeg er væk resten af måneden. Om appen til Vej og Park: kontakt Ole Berg, "
        "der er projektleder, senest 1. maj 2027.\n\nKim\n", False),
    "en-holiday-sick-leave": (
        "Out of Office: [ITP-2026-0143] Request for review: InterpretApp",
        "I am on sick leave until 12 April and will not be checking email. Questions about "
        "the interpreter app for Jobcenter go to Sara Holm, who is the contact person.\n", False),
}

HELPDESK_RECEIPTS: dict[str, tuple[str, str, bool]] = {
    "da-tak-for-henvendelsen-oprettet-sag": (
        "[Sag #51877] SV: [ITP-2026-0150] Kommentarer fra IT-Projektrådet",
        "Hej\n\nTak for din henvendelse til Nordsoft Support. Vi har oprettet en sag med "
        "sagsnummer #51877 og vender tilbage inden for to hverdage.\n\nBevar sagsnummeret i "
        "emnefeltet, hvis du svarer.\n\nNordsoft Support\n", False),
    "da-registreret-html": (
        "SV: [ITP-2026-0151] Spørgsmål til databehandleraftalen",
        "Kære kunde\n\nVi har registreret din henvendelse under sagsnummer 2026-3311. En "
        "medarbejder kontakter dig hurtigst muligt.\n\nMed venlig hilsen\nKundeservice\n", True),
    "en-thank-you-for-contacting-ticket": (
        "[Ticket#884120] RE: [ITP-2026-0152] Questions from the council",
        "Hello,\n\nThank you for contacting Fjordline Support. We have created ticket #884120 "
        "for your request and will get back to you within one business day.\n\n"
        "Fjordline Support\n", False),
    "da-henvendelse-er-modtaget": (
        "SV: [ITP-2026-0154] Spørgsmål til leverandøren",
        "Din henvendelse er modtaget og har fået sagsnummer 2026-3312. Vi svarer inden for tre "
        "hverdage.\n\nKundeservice\n", False),
    "en-your-request-has-been-logged": (
        "[#77120] RE: [ITP-2026-0155] Questions from the council",
        "Your request has been logged with reference #77120. An agent will contact you "
        "shortly.\n", False),
    "en-request-received-case-number-html": (
        "RE: [ITP-2026-0153] Questions from the council",
        "Thanks for your request. We have logged a case for you; your case number is "
        "CS-100234.\n\nThe service team\n", True),
}


@pytest.mark.parametrize("name", sorted(OUT_OF_OFFICE_ON_A_CASE) + sorted(HELPDESK_RECEIPTS))
def test_out_of_office_on_a_case_and_helpdesk_receipts_are_machines(rules: Rules,
                                                                    name: str) -> None:
    subject, body, as_html = {**OUT_OF_OFFICE_ON_A_CASE, **HELPDESK_RECEIPTS}[name]
    raw = _raw(subject, body, as_html)
    screened = screen(parse(raw), rules, BOT)
    assert screened.category == "auto_reply", screened.reason
    reading = inspect_mail(raw, rules, settings_without_config(BOT))
    assert reading["kind"] == "auto_reply" and reading["case_ref"] == ref_in_subject(subject)


@pytest.mark.parametrize(("subject", "body"), [
    # an applicant's reply to our receipt: our reference first, her own subject after it
    ("SV: [ITP-2026-0144] Automatisk svar: robot til journalisering",
     "Hej\n\nHer er det, der manglede.\n\n" + LABELLED_DA),
    # a person thanks for a mail and gives a case number: no receipt sentence
    ("SV: [ITP-2026-0145] Anmodning om vurdering",
     "Tak for din mail. Sagsnummeret i SBSYS er 27.00.00-G01-1-24, og jeg har godkendt "
     "databehandleraftalen.\n\nJonas\n"),
    ("RE: [ITP-2026-0146] Request for review",
     "Thanks for your email. I have read the DPA and approve it; our reference is "
     "case #4471 in the legal team's system.\n\nAnna\n"),
])
def test_people_who_answer_with_a_case_number_or_our_subject_stay_people(
        rules: Rules, subject: str, body: str) -> None:
    screened = screen(parse(brief(subject=subject, body=body, attachments=())), rules, BOT)
    assert screened.category == "human", screened.reason

"""Briefs written as prose, without labels: each clause scored per question by the cues in
rules/brief.yaml `prose`; the best clauses win. Nothing is invented: every answer is a run
of the applicant's own words, and a question no clause speaks to stays unanswered."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

from mailbot.reading.danish import date_precisions, parse_amounts
from mailbot.rules import QUESTION_IDS, Rules

# Words that end in a full stop without ending the sentence ("ca. 400", "f.eks. Borgerservice").
# "kr." is not among them: "90.000 kr. Betales af …" really does start a new sentence.
_ABBREVIATIONS = frozenset({
    "ca", "f.eks", "bl.a", "jf", "evt", "inkl", "ekskl", "mht", "vedr", "nr", "tlf", "mio",
    "mia", "dvs", "osv", "mv", "o.l", "pga", "iflg", "e.g", "i.e", "approx", "etc", "no", "st",
    "hr", "mr", "mrs", "ms", "dr", "cand", "stud", "adm", "dir", "afd", "t.kr", "tkr",
})
_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(«]?[A-ZÆØÅ])")
_LAST_WORD = re.compile(r"([\w.]+)\.$")
# "HR." or "NR." in capitals is a unit's name at the end of a sentence, not "hr." (Mr) or "nr."
_ACRONYM = re.compile(r"[A-ZÆØÅ]{2,}")
# Clauses: a sentence that answers two questions usually joins them with "og", "men", a
# semicolon or a dash ("Kontaktperson er Mette Holm, og løsningen bruges i Vej og Park").
_CLAUSE_BREAK = re.compile(
    r";\s+|,\s+(?=(?:og|men|mens|samt|så|fordi|da|idet|and|but|while|whereas|so|because|since)\s)"
    # (not before a name: "Jeg er kontaktperson – Henrik Lauritzen, teamleder i …" names her)
    r"|\s+[–—-]\s+(?!(?-i:[A-ZÆØÅ][\wæøå]+ [A-ZÆØÅ][\wæøå]+))"
    # "… skal bruges i Center for Sundhed og Omsorg og være i drift senest …": a second verb
    # joined by "og" starts a statement of its own
    r"|\s+(?=(?:og|samt|and) (?:(?:skal|må|bør|must|will|should|shall) )?"
    r"(?:være|blive|gå i drift|komme i drift|tages i brug|be (?:in use|"
    r"running|live|ready|up and running)|go live)\b)"
    # "… et nyt system til byggesager, som skal bruges af vores 9 sagsbehandlere i …": who
    # uses it, and where, is a statement of its own
    r"|,\s+(?=(?:som|der|which|that) (?:skal |vil |will )?(?:bruges|anvendes|benyttes|be used) "
    r"(?:af|by)\b)"
    # "Jeg er driftsleder i Vej og Park og skriver om en app til …": who writes, and what she
    # writes about, are two statements
    r"|\s+(?=(?:og|and) (?:(?:jeg|vi|I|we) )?(?:skriver|søger|ansøger|ønsker|vil gerne|beder|"
    r"am writing|write|would like|apply)\b)", re.I)
MIN_CLAUSE_WORDS = 3
VOID = "-"  # the owner of a clause that answers no question
PROSE_CHARS = 8000  # the prose reader reads this much of the unlabelled text


@dataclass
class Clause:
    text: str
    paragraph: int
    sentence: int  # index of its sentence in the whole text
    scores: dict[str, int] = field(default_factory=dict)
    # the clause answers no question: it says the answer is not known yet ("Prisen kender vi
    # ikke endnu"), gives the old system's price, or introduces a supplier's writer; the
    # clauses that merely continue it go too
    void: bool = False
    # a dated clause about another event than go-live (a demo, a workshop, a contract that
    # expires): its date counts for no question, it continues no answer, and it answers a
    # question only as that question's best clause
    aside: bool = False
    question: bool = False  # its sentence ends with a question mark

    def best(self) -> int:
        return max(self.scores.values(), default=0)


def sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph (its wrapped lines already joined)."""
    out: list[str] = []
    start = 0
    for match in _BREAK.finditer(paragraph):
        before = paragraph[start:match.start()]
        word = _LAST_WORD.search(before[-24:])  # the word before the full stop, cheaply
        if word and word.group(1).lower() in _ABBREVIATIONS \
                and not _ACRONYM.fullmatch(word.group(1)):
            continue
        out.append(before.strip())
        start = match.end()
    out.append(paragraph[start:].strip())
    return [s for s in out if s]


def clauses(sentence: str) -> list[str]:
    """The sentence cut where it joins two statements; short pieces stay with their
    neighbour, so a name or an amount is never cut off on its own."""
    pieces: list[str] = []
    start = 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        pieces.append(sentence[start:match.start()] + match.group(0).rstrip())
        start = match.end()
    pieces.append(sentence[start:])
    merged: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if merged and (len(merged[-1].split()) < MIN_CLAUSE_WORDS
                       or len(piece.split()) < MIN_CLAUSE_WORDS):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def score(text: str, rules: Rules, dates: bool = True) -> dict[str, int]:
    """The clause's score for each question: its cues, a date for `when` (unless `dates` is
    false), an amount for `cost`. The unit in a clause about who pays (`prose.payer`) scores
    at most `min_score` for `where`."""
    prose = rules.prose
    scores = {qid: sum(cue.weight for cue in prose.cues.get(qid, ()) if cue.pattern.search(text))
              for qid in QUESTION_IDS}
    if _matches(text, prose.payer):
        scores["where"] = min(scores["where"], prose.min_score)
    precisions = date_precisions(text, rules.signals) if dates else set()
    if precisions - {"year"}:
        scores["when"] += prose.date_weight
    elif precisions:
        scores["when"] += prose.year_weight
    if parse_amounts(text):
        scores["cost"] += prose.amount_weight
    return scores


def unknown(text: str, rules: Rules) -> bool:
    """The clause says its answer is not known yet (rules/brief.yaml `empty_answers`)."""
    text = " ".join(text.split())
    return any(p.search(text) for p in rules.empty_answers)


def old_cost(text: str, rules: Rules) -> bool:
    """The clause gives what the old or current system costs, not the new price
    (rules/brief.yaml `prose.old_cost`, `prose.new_cost`)."""
    prose = rules.prose
    return any(p.search(text) for p in prose.old_cost) \
        and not any(p.search(text) for p in prose.new_cost)


def supplier_self(text: str, rules: Rules) -> bool:
    """The writer introduces herself as a supplier's or a consultant's person ("My name is Tom
    Brennan and I am the account manager at Fjordline Library Systems"): rules/brief.yaml
    `prose.supplier_self`."""
    return any(p.search(text) for p in rules.prose.supplier_self)


def _matches(text: str, patterns: tuple[re.Pattern[str], ...]) -> bool:
    return any(p.search(text) for p in patterns)


def pitch(text: str, rules: Rules) -> bool:
    """The clause is a supplier's pitch to the council ("vi vil gerne præsentere vores nye
    modul for jer", "et uforpligtende møde"): rules/brief.yaml `prose.pitch`."""
    return any(p.search(text) for p in rules.prose.pitch)


def split(paragraphs: list[str], rules: Rules,
          keep: Callable[[str], bool] | None = None) -> list[Clause]:
    """Every clause of the paragraphs, scored; `keep(text)` false drops a clause (a sentence
    about the documents is not an answer). A writer who only helps another unit send the brief
    (`prose.helper`) answers nothing about herself; a dated clause about another event than
    go-live (`prose.other_events`) is an aside when another clause names the go-live with a
    date (`prose.go_live`)."""
    found = _split(paragraphs, rules, keep)
    prose = rules.prose
    helping = any(_matches(c.text, prose.helper) for c in found)
    # the clauses that name a go-live with its date ("Den nye løsning skal gå i drift 1. maj
    # 2027"); one without a date ("…, så vi skal i drift inden da") may mean the date of another
    going_live = {i for i, c in enumerate(found) if not c.void
                  and _matches(c.text, prose.go_live) and _dated(c.text, rules)}
    for i, clause in enumerate(found):
        if clause.void:
            continue
        if helping and _matches(clause.text, prose.helper + prose.self_intro):
            clause.void = True
            clause.scores = dict.fromkeys(QUESTION_IDS, 0)
        elif going_live - {i} and _matches(clause.text, prose.other_events) \
                and not _matches(clause.text, prose.go_live) and _dated(clause.text, rules):
            clause.aside = True
            clause.scores = score(clause.text, rules, dates=False)
    return found


def _dated(text: str, rules: Rules) -> bool:
    """The text names a day, week, month, quarter or season (a bare year is not a date)."""
    return bool(date_precisions(text, rules.signals) - {"year"})


def _split(paragraphs: list[str], rules: Rules,
           keep: Callable[[str], bool] | None = None) -> list[Clause]:
    out: list[Clause] = []
    number = 0
    for p_index, paragraph in enumerate(paragraphs):
        for sentence in sentences(paragraph):
            for text in clauses(sentence):
                if keep is not None and not keep(text):
                    continue
                if unknown(text, rules) or (old_cost(text, rules) and parse_amounts(text)) \
                        or supplier_self(text, rules) or sentence.rstrip().endswith("?"):
                    out.append(Clause(text, p_index, number,
                                      dict.fromkeys(QUESTION_IDS, 0), void=True))
                    continue
                out.append(Clause(text, p_index, number, score(text, rules),
                                  question=sentence.rstrip().endswith("?")))
            number += 1
    return out


def assign(found: list[Clause], wanted: set[str], rules: Rules) -> dict[str, list[int]]:
    """Which clauses answer which question (indices into `found`, in text order)."""
    minimum = rules.prose.min_score
    owner: dict[int, str] = {i: VOID for i, clause in enumerate(found) if clause.void}
    # 1. each question takes its single best clause; the clearest pairs (high score, far
    # ahead of the clause's other questions) choose first
    pairs = []
    for i, clause in enumerate(found):
        for qid, value in clause.scores.items():
            if value >= minimum:
                others = max((v for q, v in clause.scores.items() if q != qid), default=0)
                pairs.append((value, value - others, -i, qid, i))
    taken: set[str] = set()
    strongest = {qid: max((c.scores[qid] for c in found), default=0) for qid in QUESTION_IDS}
    for value, margin, _, qid, i in sorted(pairs, reverse=True):
        if margin <= 0 and value < strongest[qid]:
            # a clause that speaks as much to another question is not this one's best when a
            # stronger clause exists (which may then serve both, step 4)
            continue
        if qid not in taken and i not in owner:
            owner[i] = qid
            taken.add(qid)
    firsts = {i for i, qid in owner.items() if qid != VOID}  # each question's best clause
    # 2. every other clause that clearly speaks to a question goes to its best question (an
    # aside only where it is the question's best clause: "Leverandøren præsenterede modulet
    # på et møde den 12. januar" is not part of what the module is)
    for i, clause in enumerate(found):
        if i in owner or clause.best() < minimum or clause.aside:
            continue
        best = clause.best()
        tied = [q for q in QUESTION_IDS if clause.scores[q] == best]
        neighbour = owner.get(i - 1) if i and found[i - 1].sentence == clause.sentence else None
        owner[i] = neighbour if neighbour in tied else tied[0]
    # 3. a clause without cues continues the one before it in the same paragraph ("…, og det
    # tager lang tid"); one that opens a sentence goes with the rest of its sentence
    for i, clause in enumerate(found):
        if i in owner or not i or clause.aside:
            continue
        before = found[i - 1]
        if before.paragraph == clause.paragraph and i - 1 in owner:
            owner[i] = owner[i - 1]
    for i in range(len(found) - 2, -1, -1):
        if i not in owner and i + 1 in owner and found[i + 1].sentence == found[i].sentence \
                and not found[i].aside:
            owner[i] = owner[i + 1]
    _keep_sentences_whole(owner, found, minimum, firsts)
    chosen: dict[str, list[int]] = {qid: [] for qid in wanted}
    for i, qid in sorted(owner.items()):
        if qid in chosen:
            chosen[qid].append(i)
    # 4. a clause that answers two questions ("… bruges af 25 medarbejdere i Vej og Park")
    # serves both, as "Hvem/Hvor:" does with labels: when it does so as well as for its
    # owner, or when it finishes a sentence the question already has a clause of
    for qid in wanted:
        sentences_of_q = {found[i].sentence for i in chosen[qid]}
        # a clause that speaks to this question as clearly as to its owner, and at least as
        # clearly as the question's own clauses, serves it too ("…, som skal bruges af vores 9
        # sagsbehandlere i Byggeri og Miljø": who and where) - unless it only continues a
        # sentence of its owner's ("Jeg er kontaktperson, og brugerne er … i Kontrolcentret")
        own_best = max((found[j].scores[qid] for j in chosen[qid]), default=0)
        # a question whose own clauses are weaker shares its strongest clause: "The Parking
        # team in Roads and Parks would like a new parking permit system" is the what, not
        # "…, and the system will be used by the 5 parking officers"
        top = max((c.scores[qid] for j, c in enumerate(found) if owner.get(j, VOID) != VOID),
                  default=0)
        for i, clause in enumerate(found):
            if i not in owner or owner[i] == qid or i in chosen[qid] \
                    or clause.scores[qid] < minimum:
                continue
            # "…, og Jobcentret betaler den selv" finishes the cost sentence: the unit there
            # pays, and where has a clause of its own
            continues_owner = bool(i) and found[i - 1].sentence == clause.sentence \
                and owner.get(i - 1) == owner[i]
            if (clause.scores[qid] > own_best and clause.scores[qid] >= clause.scores[owner[i]]
                    and clause.scores[qid] == top and not (own_best and continues_owner)) \
                    or clause.sentence in sentences_of_q \
                    or (clause.scores[qid] >= max(minimum + 2, clause.scores[owner[i]], own_best)
                        and not continues_owner):
                chosen[qid].append(i)
        if not chosen[qid]:
            best_i = max(range(len(found)), key=lambda j: found[j].scores[qid], default=None)
            if best_i is not None and found[best_i].scores[qid] >= minimum:
                chosen[qid].append(best_i)
        chosen[qid] = _whole_sentences(
            _strongest(sorted(chosen[qid]), found, qid, rules.prose.max_clauses), found)
    return chosen


def _keep_sentences_whole(owner: dict[int, str], found: list[Clause], minimum: int,
                          firsts: set[int]) -> None:
    """A clause that continues a sentence ("…, og borgerne venter op til tre uger på svar")
    goes with the clause before it, unless it clearly speaks to a question of its own and that
    question has no clause elsewhere: the second half of the why sentence is not the who. A
    clause that is its question's best (`firsts`: "…og skriver om en app til registrering af
    skader") stays its question's."""
    for i, clause in enumerate(found):
        if i in firsts:
            continue
        for j in (i - 1, i + 1):
            own, mate = owner.get(i), owner.get(j)
            if own is None or mate is None or own == mate or VOID in (own, mate) \
                    or found[j].sentence != clause.sentence:
                continue
            elsewhere = any(q == own and found[k].sentence != clause.sentence
                            for k, q in owner.items())
            weak = clause.scores[own] < minimum + 2
            continues = j == i - 1  # the clause after another one of its sentence
            if elsewhere and ((weak and continues) or clause.scores[mate] >= minimum):
                owner[i] = mate
                break


def _whole_sentences(indices: list[int], found: list[Clause]) -> list[int]:
    """A clause between two chosen clauses of the same sentence is chosen too: an answer never
    skips the middle of a sentence."""
    filled = set(indices)
    for a, b in pairwise(indices):
        if found[a].sentence == found[b].sentence:
            filled.update(range(a, b))
    return sorted(filled)


def _strongest(indices: list[int], found: list[Clause], qid: str, limit: int) -> list[int]:
    """At most `limit` clauses, the highest-scoring ones, kept in text order."""
    if len(indices) <= limit:
        return indices
    ranked = sorted(indices, key=lambda i: (-found[i].scores[qid], i))[:limit]
    return sorted(ranked)


def render(indices: list[int], found: list[Clause]) -> str:
    """The clauses as the applicant wrote them: one paragraph per paragraph of the mail."""
    out: list[str] = []
    paragraph = None
    for i in indices:
        clause = found[i]
        if paragraph is not None and clause.paragraph != paragraph:
            out.append("\n\n")
        elif out:
            out.append(" ")
        out.append(clause.text)
        paragraph = clause.paragraph
    # an answer cut at a clause break does not end in its comma ("… til de 120 medarbejdere,")
    return "".join(out).strip().rstrip(",;").rstrip()


def _within(paragraphs: list[str], limit: int) -> list[str]:
    """The paragraphs up to `limit` characters: a brief is a page, not a pasted log."""
    out: list[str] = []
    used = 0
    for paragraph in paragraphs:
        if used >= limit:
            break
        out.append(paragraph[:limit - used])
        used += len(out[-1])
    return out


def read_prose(paragraphs: list[str], wanted: set[str], rules: Rules,
               keep: Callable[[str], bool] | None = None,
               min_statements: int = 1) -> dict[str, str]:
    """The answers to the `wanted` questions that the paragraphs give (question -> text);
    none at all when they come from fewer than `min_statements` different clauses that speak
    to a question themselves (a clause that only continues another does not count), and none
    from a supplier's pitch (rules/brief.yaml `prose.pitch`)."""
    found = split(_within(paragraphs, PROSE_CHARS), rules, keep)
    if not found or not wanted or any(pitch(c.text, rules) for c in found):
        return {}
    chosen = assign(found, wanted, rules)
    minimum = rules.prose.min_score
    # a question ("Kan vi komme på mødet den 12. maj med vores nye app til Borgerservice?")
    # asks rather than tells: it is no statement of a brief
    statements = {i for indices in chosen.values() for i in indices
                  if found[i].best() >= minimum and not found[i].question}
    if len(statements) < min_statements:
        return {}
    return {qid: render(indices, found) for qid, indices in chosen.items() if indices}


def looks_english(text: str, rules: Rules) -> bool:
    """More common English words than Danish ones: an English prose brief."""
    words = re.findall(r"[a-zæøå']+", text.lower())
    english = sum(w in rules.prose.english_words for w in words)
    danish = sum(w in rules.prose.danish_words for w in words)
    return english > danish

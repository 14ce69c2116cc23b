"""The system a brief is about: the names to look up in KITOS, and whether the brief says the
system is new. Pure: text in, names out; the cues are rules/signals.yaml `systems`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.rules import SystemCues

# a word starts with a letter; hyphens join ("IT-Projektrådet", "KMD-Opus")
_WORD = re.compile(r"[^\W\d_][\w-]*")
_SENTENCE_END = re.compile(r"[.!?:;\n•]")
_QUOTED = re.compile(r"[\"“„«]\s*([^\"“”„«»\n]{2,60}?)\s*[\"”“»]")
_CAMEL = re.compile(r"[a-zæøå][A-ZÆØÅ]")
_COMPOUND = re.compile(r"-[a-zæøå][\w-]*$")


@dataclass(frozen=True)
class SystemName:
    """A name to look up: as the brief wrote it, and normalised (`key`, the text searched
    for in KITOS and the cache's key)."""

    written: str  # "økonomisystemet"
    key: str  # "økonomisystem"


def normalise_name(name: str, cues: SystemCues) -> str:
    """Case folded, white space collapsed; one ordinary word (no capital after its first
    letter, not all capitals) also loses its longest Danish ending that leaves `min_stem`
    letters: "Økonomisystemet" -> "økonomisystem", "systemerne" -> "system", "RuteNet" ->
    "rutenet" (a name as its maker spells it keeps its ending)."""
    words = name.split()
    plain = " ".join(words).casefold()
    if len(words) != 1 or _CAMEL.search(name) or _acronym(name):
        return plain
    for ending in cues.endings:
        if plain.endswith(ending) and len(plain) - len(ending) >= cues.min_stem:
            return plain[: -len(ending)]
    return plain


def says_new_system(text: str, cues: SystemCues) -> bool:
    """True when the text says the system is new ("nyt system", "new system"), and no
    negative phrase ("ikke et nyt system") says otherwise."""
    if any(p.search(text) for p in cues.new_negative):
        return False
    return any(p.search(text) for p in cues.new_positive)


def system_names(title: str, what: str, cues: SystemCues) -> tuple[SystemName, ...]:
    """The names of systems in the case's title and the answer to Hvad, best first: quoted
    names; names written as names (CamelCase "RuteNet", acronyms "SBSYS", capitalised words
    after a sentence's first word, consecutive ones as one name "Microsoft Teams"); words
    that say what they are ("økonomisystemet", `name_words`); last, a capitalised first word
    of a sentence ("Aula skal have …"). One per normalised name, at most `max_names`;
    `not_names` are left out."""
    texts = (title, what)
    runs = [_capitalised_runs(text, cues) for text in texts]
    found = [m.group(1) for text in texts for m in _QUOTED.finditer(text)]
    found += [name for names, _ in runs for name in names]
    found += [m.group(0) for text in texts for p in cues.name_words for m in p.finditer(text)]
    found += [word for _, first_words in runs for word in first_words]
    names: dict[str, SystemName] = {}
    for written in found:
        key = normalise_name(written, cues)
        if key and key not in names and not {key, written.casefold()} & cues.not_names:
            names[key] = SystemName(written.strip(), key)
    return tuple(names.values())[: cues.max_names]


def _capitalised_runs(text: str, cues: SystemCues) -> tuple[list[str], list[str]]:
    """(runs of words written as names, joined by single spaces; capitalised first words
    of sentences that begin no such run). A capitalised first word followed by a name
    belongs to it ("Microsoft Teams skal …")."""
    runs: list[str] = []
    first_words: list[str] = []
    run: list[str] = []
    pending = ""  # a capitalised first word of a sentence, not yet known to begin a run
    previous_end: int | None = None
    for match in _WORD.finditer(text):
        # "RuteNet-licenser", "SBSYS-integrationen": the name is before the hyphen
        word = _COMPOUND.sub("", match.group(0))
        gap = text[previous_end:match.start()] if previous_end is not None else ""
        first = previous_end is None or bool(_SENTENCE_END.search(gap))
        previous_end = match.end()
        excluded = word.casefold() in cues.not_names
        if not excluded and _name_like(word, first):
            if gap != " " or not (run or pending):
                runs += [" ".join(run)] if run else []
                first_words += [pending] if pending else []
                run, pending = [], ""
            run = [*([pending] if pending else []), *run, word]
            pending = ""
            continue
        runs += [" ".join(run)] if run else []
        first_words += [pending] if pending else []
        run = []
        pending = word if first and not excluded and word[0].isupper() else ""
    runs += [" ".join(run)] if run else []
    first_words += [pending] if pending else []
    return runs, first_words


def _name_like(word: str, sentence_start: bool) -> bool:
    if _CAMEL.search(word) or _acronym(word):
        return True
    return word[0].isupper() and not sentence_start


def _acronym(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)

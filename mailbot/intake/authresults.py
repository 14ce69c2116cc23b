"""The receiving server's verdict on a mail's sender, read from `Authentication-Results`
(RFC 8601), so that a mail whose From: failed DMARC is not believed (SCENARIOS A5, A6).

Only a header our own border server added may be believed (RFC 8601 section 5, section 7.2):
it is recognised by its authserv-id (section 2.5), which the operator names in
`security.authserv_id`; a header with any other authserv-id is the sender's own words and is
ignored. A server prepends its trace headers (RFC 5322 section 3.6.7), so ours is the topmost
one with our authserv-id: one further down, even with our id, was written before our server
saw the mail, by someone else (A6).

The DMARC result decides (RFC 7489 section 3.1: DMARC passes only when SPF or DKIM passed
for a domain *aligned* with From:). A `dkim=pass` for some other domain beside `dmarc=fail`
proves only that someone signed the mail, not that From:'s domain sent it (A5).

No library in the dependencies parses the header; this is the small part of the RFC 8601
section 2.2 grammar needed here: comments, quoted strings, `;`-separated results of the form
`method[/version]=result` followed by `reason=` and `ptype.property=value` pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HEADER = "authentication-results"
# `key = value` inside one resinfo (RFC 8601 section 2.2: methodspec, reasonspec, propspec);
# a value is a quoted-string or runs to the next white space
_PAIR = re.compile(r'([A-Za-z0-9_.\-/]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s"]+)')


@dataclass(frozen=True)
class MethodResult:
    """One resinfo: `dmarc=fail (p=reject) header.from=example.dk` ->
    method "dmarc", result "fail", properties {"header.from": "example.dk"}."""

    method: str  # lower case, without a /version
    result: str  # lower case
    properties: tuple[tuple[str, str], ...] = ()  # (ptype.property lower case, value)

    def prop(self, name: str) -> str:
        return next((value for key, value in self.properties if key == name), "")


@dataclass(frozen=True)
class AuthResults:
    """One Authentication-Results header: who wrote it and what it found."""

    authserv_id: str  # lower case
    results: tuple[MethodResult, ...]


def _strip_comments(text: str) -> str:
    """The header with its comments (RFC 5322 section 3.2.2, nested, `\\`-quoted) turned into
    a space; quoted strings are kept as they are."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            quoted = char == '"'
            out.append(char)
    return "".join(out)


def _split_semicolons(text: str) -> list[str]:
    """Split on `;` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_authentication_results(value: str) -> AuthResults | None:
    """One header's value (RFC 8601 section 2.2), or None when it names no authserv-id.

    `authserv-id [version] ; resinfo ; resinfo …` or `authserv-id ; none`. A resinfo that
    does not start with `method=result` is skipped, not fatal: an unknown method must not
    hide a known one (section 2.7)."""
    head, *resinfos = _split_semicolons(_strip_comments(value))
    words = head.split()
    if not words or "=" in words[0]:
        # no authserv-id: Exchange Online begins with "spf=pass"; `=` is not allowed in a
        # value (RFC 2045 section 5.1 tspecials), so this is a result, not a server's name
        return None
    authserv_id = _unquote(words[0]).lower()
    results: list[MethodResult] = []
    for resinfo in resinfos:
        pairs = [(key.lower(), _unquote(val)) for key, val in _PAIR.findall(resinfo)]
        if not pairs:
            continue  # "none", or nothing readable
        (method, result), rest = pairs[0], pairs[1:]
        results.append(MethodResult(
            method=method.partition("/")[0].strip(), result=result.lower(),
            properties=tuple((key, val) for key, val in rest if key != "reason")))
    return AuthResults(authserv_id, tuple(results))


def trusted_results(values: Iterable[str], authserv_ids: Sequence[str]) -> AuthResults | None:
    """The topmost header (values in header order, top first) whose authserv-id is one of
    ours (compared case-insensitively, as domain names are: RFC 4343); None when none is,
    or when `authserv_ids` is empty (nothing is trusted, nothing is checked)."""
    trusted = {a.strip().lower() for a in authserv_ids if a.strip()}
    if not trusted:
        return None
    for value in values:
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id in trusted:
            return parsed
    return None


def dmarc_failure(headers: dict[str, tuple[str, ...]], from_address: str,
                  authserv_ids: Sequence[str]) -> str:
    """The From: domain our own server found failing DMARC ("" when it did not say so).

    `headers` are the mail's headers by lower-case name, each tuple in header order (as
    `Inbound.headers`). The domain is the result's `header.from` (RFC 7489 section 11.2),
    else From:'s."""
    found = trusted_results(headers.get(HEADER, ()), authserv_ids)
    failed = [r for r in (found.results if found else ()) if r.method == "dmarc"
              and r.result == "fail"]
    if not failed:
        return ""
    return failed[0].prop("header.from").lower() or from_address.rpartition("@")[2] or "unknown"

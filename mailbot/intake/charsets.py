"""Text from mail bytes whose charset label is wrong, missing or unknown: never U+FFFD, never a
letter dropped.

- A part labelled `iso-8859-1`, `latin1` or `us-ascii` is decoded as windows-1252, as mail
  clients and browsers do (the WHATWG Encoding Standard makes these labels aliases of
  windows-1252): Outlook labels its text iso-8859-1 and writes en-dashes (0x96) and curly
  quotes (0x93, 0x94) from windows-1252. Such a part whose bytes are valid UTF-8 is UTF-8
  (mislabelled UTF-8 is the other common mistake; real Latin-1 text is almost never valid
  UTF-8, RFC 3629 section 1).
- A part with another known charset is decoded strictly with it; when the bytes do not fit,
  or the charset is unknown or absent (RFC 2045 section 5.2 says us-ascii, but 8-bit bytes
  show it is not), the bytes are decoded by what decodes cleanly: UTF-8, then windows-1252 for
  text that reads as Western European, then the charset-normalizer library's best guess
  (GB2312, KOI8-R and the like), and windows-1252 last.
- Raw 8-bit bytes in headers (RFC 5322 allows none; RFC 6532 allows UTF-8) are decoded the
  same way, and RFC 2047 encoded-words in them with their own charset through the same rules.
"""

from __future__ import annotations

import codecs
import re
from email.header import decode_header

from charset_normalizer import from_bytes

# Labels whose bytes are windows-1252 in practice (WHATWG Encoding Standard, section 4.2).
WINDOWS_1252_LABELS = frozenset({
    "iso-8859-1", "iso8859-1", "iso_8859-1", "iso-ir-100", "latin1", "latin-1", "l1",
    "l_1", "cp819", "ibm819", "us-ascii", "ascii", "ansi_x3.4-1968", "us", "windows-1252",
    "cp1252", "x-cp1252",
})
# Labels that name no charset at all.
NO_CHARSET = frozenset({"", "unknown-8bit", "x-unknown", "unknown", "default", "8bit",
                        "x-user-defined", "charset"})
# Western European text has at most a few non-ASCII characters in a row ("“Æø"); bytes of a
# multi-byte or Cyrillic charset read as windows-1252 make longer runs ("ä½ å¥½").
MAX_WESTERN_RUN = 3
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{" + str(MAX_WESTERN_RUN + 1) + ",}")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _undefined_as_latin1(err: UnicodeError) -> tuple[str, int]:
    """The five bytes windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) read as
    ISO-8859-1 does, so that every byte becomes a character."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return err.object[err.start:err.end].decode("latin-1"), err.end


codecs.register_error("mailbot-latin1", _undefined_as_latin1)


def windows_1252(data: bytes) -> str:
    """Every byte as windows-1252 (the undefined five as ISO-8859-1): never U+FFFD."""
    return data.decode("cp1252", "mailbot-latin1")


def _label(charset: str | None) -> str:
    return (charset or "").strip().strip("\"'").lower()


def _strict(data: bytes, charset: str) -> str | None:
    try:
        text = data.decode(charset)
        text.encode("utf-8")  # some codecs make lone surrogates
    except (LookupError, UnicodeError, TypeError, ValueError):
        return None
    return None if "\ufffd" in text else text


def _western(text: str) -> bool:
    return _NON_ASCII_RUN.search(text) is None


def _invalid_as_windows_1252(err: UnicodeError) -> tuple[str, int]:
    """A byte that is no part of a UTF-8 sequence, read as windows-1252 (a truncated or
    damaged sequence in otherwise UTF-8 text)."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return windows_1252(err.object[err.start:err.end]), err.end


codecs.register_error("mailbot-utf8-cp1252", _invalid_as_windows_1252)
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}"
                            rb"|[\xf0-\xf4][\x80-\xbf]{3}")


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few damaged bytes (a name cut inside a character, one stray byte):
    at least as many whole multi-byte sequences as bytes outside them. The stray bytes are
    read as windows-1252."""
    sequences = _UTF8_SEQUENCE.findall(data)
    if not sequences:
        return None
    stray = sum(1 for byte in _UTF8_SEQUENCE.sub(b"", data) if byte > 0x7F)
    if stray > len(sequences):
        return None
    return data.decode("utf-8", "mailbot-utf8-cp1252")


def guess_text(data: bytes) -> str:
    """Bytes with no usable label: UTF-8 (also with a few damaged bytes), windows-1252 when
    that reads as Western European text, charset-normalizer's guess when it decodes cleanly,
    windows-1252 last."""
    utf8 = _strict(data, "utf-8") or _mostly_utf8(data)
    if utf8 is not None:
        return utf8
    western = windows_1252(data)
    if _western(western):
        return western
    best = from_bytes(data).best()
    if best is not None:
        guessed = _strict(data, best.encoding)
        if guessed is not None:
            return guessed
    return western


def decode_text(data: bytes, charset: str | None) -> str:
    """A text part's bytes under its declared `charset` (see the module text for the rules)."""
    if not data:
        return ""
    label = _label(charset)
    if not any(byte > 0x7F for byte in data) and label in WINDOWS_1252_LABELS | NO_CHARSET:
        return data.decode("ascii")
    if label in WINDOWS_1252_LABELS:
        return _strict(data, "utf-8") or windows_1252(data)
    if label not in NO_CHARSET:
        text = _strict(data, label)
        if text is not None:
            return text
    return guess_text(data)


def decode_raw_header(value: str) -> str:
    """A header value as the email package keeps raw 8-bit bytes (surrogate escapes), with
    those bytes decoded by what decodes cleanly; encoded-words are left as they are."""
    if not _SURROGATE.search(value):
        return value
    return guess_text(value.encode("utf-8", "surrogateescape"))


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def decode_header_text(value: str) -> str:
    """A header's text: raw 8-bit bytes decoded (decode_raw_header), then RFC 2047
    encoded-words decoded with their own charset through `decode_text` (so an encoded-word
    labelled iso-8859-1 holding windows-1252 bytes reads right). Unparseable encoded-words
    stay as written."""
    text = decode_raw_header(value)
    if "=?" not in text:
        return text
    try:
        # unfolded first (RFC 5322 section 2.2.3): decode_header reads each line apart and
        # strips the folding space in front of a plain word after an encoded-word
        chunks = decode_header(_FOLD.sub("", text))
    except (ValueError, LookupError, UnicodeError):
        return text
    decoded: list[tuple[str, str | None]] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):  # decode_header returns str when nothing was encoded
            decoded.append((chunk, None))
        elif charset is None:  # text between encoded-words, kept by decode_header this way
            decoded.append((chunk.decode("raw-unicode-escape", "replace"), None))
        else:
            decoded.append((decode_text(chunk, charset), "utf-8"))
    # decode_header already dropped the white space between adjacent encoded-words
    # (RFC 2047 section 6.2) and kept the rest in the unencoded chunks
    return "".join(str(chunk) for chunk, _ in decoded)

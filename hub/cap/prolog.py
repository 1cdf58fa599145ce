"""The prolog check of the hardened parser: a DOCTYPE or ENTITY declaration is found in the bytes, before libxml2
reads (and, for entity bombs, counts the expansion of) any DTD."""

from __future__ import annotations

_PROLOG_SKIP = ((b"<?", b"?>"), (b"<!--", b"-->"))


def declares(data: bytes) -> bool:
    """Whether the prolog (what precedes the root element) holds a DOCTYPE or ENTITY declaration, read from the
    bytes before any XML parser sees them. NUL bytes are dropped first, so UTF-16 and UTF-32 prologs read as
    ASCII; processing instructions (the XML declaration) and comments are skipped. Encodings that are not
    ASCII-compatible (EBCDIC) fall through to the parser, which refuses a DOCTYPE there as well."""
    text = data.replace(b"\x00", b"") if b"\x00" in data[:4096] else data
    at = 3 if text.startswith(b"\xef\xbb\xbf") else 2 if text[:2] in (b"\xff\xfe", b"\xfe\xff") else 0
    while True:
        while at < len(text) and text[at] in b" \t\r\n":
            at += 1
        for start, end in _PROLOG_SKIP:
            if text.startswith(start, at):
                close = text.find(end, at + len(start))
                if close < 0:
                    return False  # unterminated: not well-formed, the parser says so
                at = close + len(end)
                break
        else:
            return text.startswith((b"<!DOCTYPE", b"<!ENTITY"), at)

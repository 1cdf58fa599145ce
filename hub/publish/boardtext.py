"""Board text: a publication fitted to a display board's budget (lines x characters, charset).

A board shows one language (:class:`~hub.publish.publications.Notice`) of one publication version
(:class:`~hub.publish.publications.Publication`). :func:`board_text` resolves what a board channel sends
(:class:`hub.ports.BoardText`): the core fits the text, the channel only sends it. :func:`fit` turns the publication
and its notice into at most ``lines`` lines of at most ``chars`` characters, in order of importance: the severity
word (``ÜBUNG:`` before it for an exercise, ``Entwarnung`` for an all-clear or a cancel), the headline, the
instruction, the validity (``bis 18:30`` local time). The fixed words are in the board's ``language`` (any of the
hub's nine, :mod:`hub.publish.notify`; German by default); the warning's texts in the notice the board shows (its
language when the warning carries it). Arabic is sent as text in logical order: the board lays out right-to-left
itself, as it does for any script. When everything fits, the text is the notice's own, only
whitespace collapsed. When it does not, the least important parts go first: the DWD's boilerplate, then later
instruction sentences, then the rest of a sentence, which is cut at a word with an ellipsis. Words longer than a
line are hyphen-split; nothing else is. :func:`transliterate` makes any text encodable in a board's charset.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from hub.cap import labels
from hub.config.sections import BoardConfig
from hub.ports import BoardText
from hub.publish import notify
from hub.publish.publications import Notice, Publication

Charset = Literal["utf-8", "latin-1", "ascii"]


ONSET_NOTE_S = 15 * 60
"""An onset this much after ``sent`` is shown (``ab 22:00 bis 23:00``): the danger is still to come."""

_BOILERPLATE = re.compile(r"^\s*ACHTUNG!\s*Hinweis auf mögliche Gefahren:\s*", re.IGNORECASE)
"""The DWD's opening of every instruction; the first thing dropped when space is short."""
_DWD_HEADLINE = re.compile(r"^\s*Amtliche\s+\S*WARNUNG\s+vor\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'„‚“‘(A-ZÄÖÜ])")
_BREAK_TAG = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HYPHEN_MIN = 4
"""A long word is split onto the end of a line only if at least this many characters (hyphen included) fit."""


# -- transliteration ----------------------------------------------------------------------------------------------

_TYPOGRAPHIC = {
    "„": '"', "“": '"', "”": '"', "‟": '"', "«": '"', "»": '"', "″": '"',
    "‚": "'", "‘": "'", "’": "'", "‛": "'", "‹": "'", "›": "'", "′": "'", "´": "'", "`": "'",
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-", "…": "...",
    "€": "EUR", "•": "*", "·": "*", "™": "TM", "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u200b": "",
}
_LATIN1_TYPOGRAPHIC = {k: v for k, v in _TYPOGRAPHIC.items() if k not in "«»´·\u00a0"}
"""Latin-1 has « » ´ · and the no-break space itself; everything else above is outside it."""
_UMLAUTS = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ẞ": "SS"}
_BASE_LETTERS = {"ı": "i", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T",
                 "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ð": "d", "Ð": "D", "þ": "th",
                 "Þ": "Th", "ŋ": "n", "Ŋ": "N"}
"""Latin letters without a decomposition (Turkish dotless ı, Polish ł …) and their base letters."""


def transliterate(text: str, charset: Charset) -> str:
    """``text`` in characters the charset can encode; never raises for any input.

    ASCII: ä -> ae, Ä -> Ae (AE inside a word in capitals: GLÄTTE -> GLAETTE), ß -> ss, typographic quotes, dashes
    and the ellipsis to their ASCII forms, € -> EUR, other letters without their accents (NFKD; ı -> i, ł -> l),
    the rest '?' (a board showing Arabic or Cyrillic needs utf-8: the configuration says so).
    Latin-1 keeps umlauts and ß and maps the rest the same way. UTF-8 keeps everything. Control characters go.
    """
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    if charset == "utf-8":
        return text
    table = _TYPOGRAPHIC if charset == "ascii" else _LATIN1_TYPOGRAPHIC
    out: list[str] = []
    for i, ch in enumerate(text):
        if _encodable(ch, charset):
            out.append(ch)
        elif ch in table:
            out.append(table[ch])
        elif charset == "ascii" and ch in _UMLAUTS:
            out.append(_umlaut(text, i))
        else:
            out.append(_decomposed(ch, charset))
    return "".join(out)


def _encodable(ch: str, charset: Charset) -> bool:
    return ord(ch) < (128 if charset == "ascii" else 256)


def _umlaut(text: str, i: int) -> str:
    """ä -> ae; Ä -> AE where its neighbours are capitals (ÜBUNG, GLÄTTE), else Ae."""
    repl = _UMLAUTS[text[i]]
    if text[i].isupper():
        after = text[i + 1] if i + 1 < len(text) else ""
        before = text[i - 1] if i > 0 else ""
        if (after.isalpha() and after.isupper()) or (not after.isalpha() and before.isalpha() and before.isupper()):
            return repl.upper()
    return repl


def _decomposed(ch: str, charset: Charset) -> str:
    base = _BASE_LETTERS.get(ch) or "".join(c for c in unicodedata.normalize("NFKD", ch)
                                            if not unicodedata.combining(c))
    if base and all(_encodable(c, charset) for c in base):
        return base
    return "?"


# -- fitting ------------------------------------------------------------------------------------------------------


def plain(text: str) -> str:
    """One line of plain text: HTML line breaks and entities (NINA texts carry them) resolved, whitespace collapsed."""
    if "<" in text or "&" in text:
        text = html.unescape(_BREAK_TAG.sub(" ", text))
    return _SPACE.sub(" ", text).strip()


def ended(pub: Publication, notice: Notice) -> bool:
    """An all-clear or a cancel: the board says ``Entwarnung``."""
    return notice.all_clear or pub.msg_type == "Cancel"


def severity_word(pub: Publication, notice: Notice, lang: str = "de") -> str:
    """The word a board leads with in ``lang`` (without the exercise marker; hub.cap.labels has the words)."""
    if ended(pub, notice):
        return notify.texts(lang).gettext(notify.ALL_CLEAR)
    return labels.severity_word(pub.severity, lang)


def validity(pub: Publication, notice: Notice, tz: str = "Europe/Berlin", *, onset: datetime | None = None,
             note_onset: bool = True, lang: str = "de") -> str:
    """``bis 18:30`` (local time; with the date when it is another day than sent), ``ab 22:00 bis 23:00`` for a
    warning whose ``onset`` (aware; publications keep none, so the pipeline passes none) is still to come, ``""``
    without an expiry or for an all-clear."""
    expires = pub.expires
    if expires is None or ended(pub, notice):
        return ""
    zone = _zone(tz)
    ref_local = pub.sent.astimezone(zone)
    t = notify.texts(lang)
    if note_onset and onset is not None and (onset - pub.sent).total_seconds() >= ONSET_NOTE_S:
        start = onset.astimezone(zone)
        return t.format(notify.FROM_UNTIL, start=_when(start, ref_local), end=_when(expires.astimezone(zone), start))
    return t.format(notify.UNTIL, time=_when(expires.astimezone(zone), ref_local))


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _when(at: datetime, ref: datetime | None) -> str:
    if ref is not None and at.date() == ref.date():
        return at.strftime("%H:%M")
    if ref is not None and at.year == ref.year:
        return at.strftime("%d.%m. %H:%M")
    return at.strftime("%d.%m.%Y %H:%M")


def board_text(board: BoardConfig, pub: Publication, notice: Notice, *, tz: str = "Europe/Berlin") -> BoardText:
    """What ``board`` shows of ``pub``: ``notice``'s texts and the board's language's words, lines fitted to its
    budget, every text in its charset."""
    return BoardText(
        thread=pub.thread, version=pub.version, msg_type=pub.msg_type, status=pub.status, severity=pub.severity,
        expires=pub.expires, lines=tuple(fit(pub, notice, lines=board.lines, chars=board.chars,
                                             charset=board.charset, tz=tz, lang=board.language)),
        headline=transliterate(plain(notice.headline), board.charset),
        instruction=transliterate(plain(notice.instruction), board.charset))


def fit(pub: Publication, notice: Notice, *, lines: int, chars: int, charset: Charset = "utf-8",
        tz: str = "Europe/Berlin", onset: datetime | None = None, lang: str = "de") -> list[str]:
    """At most ``lines`` lines of at most ``chars`` characters, each encodable in ``charset``, the fixed words in
    ``lang`` (see module doc)."""
    if lines < 1 or chars < 4:
        raise ValueError(f"a board needs at least one line of four characters, not {lines} x {chars}")
    tl = _Fitter(lines, chars, charset)
    head_variants = [tl.text(h) for h in _heads(pub, notice, lang)]
    headline = tl.text(plain(notice.headline) or plain(notice.event))
    instruction = tl.text(plain(notice.instruction))
    valid = tl.text(validity(pub, notice, tz, onset=onset, lang=lang))
    valid_short = tl.text(validity(pub, notice, tz, onset=onset, note_onset=False, lang=lang))
    for head in head_variants:  # everything, as the issuer wrote it
        laid = tl.layout([[head], [headline], [instruction], [valid]])
        if laid is not None:
            return laid
    lead = next((h for h in head_variants if tl.layout([[h]]) is not None), None)
    if lead is None:  # not even the shortest marker fits: show what fits of it
        return tl.wrap(head_variants[-1].split())[:lines]
    compact = tl.text(_compact_headline(plain(notice.headline), plain(notice.event)))
    stripped = _BOILERPLATE.sub("", plain(notice.instruction))
    sentences = [tl.text(s) for s in _SENTENCE_END.split(stripped) if s.strip()]
    return tl.choose(lead, headline, compact, sentences, [valid, valid_short])


def _heads(pub: Publication, notice: Notice, lang: str) -> list[str]:
    """The lead, longest first: with the exercise marker, one variant per word length."""
    word = severity_word(pub, notice, lang)
    short = word if ended(pub, notice) else labels.severity_short(pub.severity, lang)
    if pub.status == "Exercise":
        exercise = notify.texts(lang).gettext(notify.EXERCISE)
        return list(dict.fromkeys([f"{exercise}: {word}", f"{exercise}: {short}", exercise]))
    return list(dict.fromkeys([word, short]))


def _compact_headline(headline: str, event: str) -> str:
    """The DWD's ``Amtliche WARNUNG vor STARKEM GEWITTER`` says no more than its event ``STARKES GEWITTER`` once
    the severity word leads; other headlines have no shorter form."""
    if event and _DWD_HEADLINE.match(headline) and len(event) < len(headline):
        return event
    return ""


class _Fitter:
    """Layout and selection for one budget."""

    def __init__(self, lines: int, chars: int, charset: Charset) -> None:
        self.lines, self.chars, self.charset = lines, chars, charset
        self.ellipsis = "…" if charset == "utf-8" else "..."

    def text(self, s: str) -> str:
        """Plain text (see :func:`plain`) in the board's charset, whitespace collapsed once more."""
        return _SPACE.sub(" ", transliterate(s, self.charset)).strip()

    def wrap(self, words: Sequence[str]) -> list[str]:
        """Greedy word wrap; a word longer than a line is hyphen-split, filling the current line first."""
        out: list[str] = []
        cur = ""
        for word in words:
            if not cur and len(word) <= self.chars:
                cur = word
                continue
            if cur and len(cur) + 1 + len(word) <= self.chars:
                cur = f"{cur} {word}"
                continue
            if len(word) <= self.chars:
                out.append(cur)
                cur = word
                continue
            if cur:
                room = self.chars - len(cur) - 1
                if room >= _HYPHEN_MIN:
                    out.append(f"{cur} {word[:room - 1]}-")
                    word = word[room - 1:]
                else:
                    out.append(cur)
            step = self.chars - 1
            while len(word) > self.chars:
                out.append(f"{word[:step]}-")
                word = word[step:]
            cur = word
        if cur:
            out.append(cur)
        return out

    def layout(self, blocks: Sequence[Sequence[str]]) -> list[str] | None:
        """The lines for these blocks (each a list of texts), or None if they exceed the budget.

        Each block on its own lines where that fits (easier to read), else all of it as one flowing text."""
        words = [[w for t in block for w in t.split()] for block in blocks]
        words = [w for w in words if w]
        blockwise = [line for w in words for line in self.wrap(w)]
        if len(blockwise) <= self.lines:
            return blockwise
        flowing = self.wrap([x for w in words for x in w])
        return flowing if len(flowing) <= self.lines else None

    def choose(self, head: str, headline: str, compact: str, sentences: list[str], valid: Sequence[str]) -> list[str]:
        """Greedy by importance (head, headline or its short form, first sentence, validity or its short form,
        further sentences), shown in reading order; then the most important part left out is cut to fill the rest,
        with an ellipsis (a sentence keeps at least two words: "Bei…" tells nobody anything)."""
        slots: list[list[str]] = [[head], [""], [""] * len(sentences), [""]]
        wanted: list[tuple[int, int, str]] = [(1, 0, headline)]
        if compact:
            wanted.append((1, 0, compact))
        wanted += [(2, i, s) for i, s in enumerate(sentences[:1])]
        wanted += [(3, 0, v) for v in valid]
        wanted += [(2, i, s) for i, s in enumerate(sentences) if i > 0]
        left_out: list[tuple[int, int, str]] = []
        for b, i, text in wanted:
            if not text or slots[b][i]:
                continue
            slots[b][i] = text
            if self.layout(slots) is None:
                slots[b][i] = ""
                left_out.append((b, i, text))
        for b, i, text in left_out:
            if slots[b][i] or b == 3:  # "bis…" says nothing: the validity is shown whole or not at all
                continue
            cut = self._cut(slots, b, i, text, 1 if b == 1 else 2)
            if cut:
                slots[b][i] = cut
                break
        laid = self.layout(slots)
        assert laid is not None  # the head alone fits, and every step kept the layout within budget
        return laid

    def _cut(self, slots: list[list[str]], b: int, i: int, text: str, min_words: int) -> str:
        """The longest prefix of ``min_words`` or more words of ``text`` plus an ellipsis that fits, or ``""``."""
        words = text.split()
        lo, hi, best = min_words, len(words) - 1, ""
        while lo <= hi:  # more words never take fewer lines: bisect
            mid = (lo + hi) // 2
            candidate = " ".join(words[:mid]).rstrip(",;:-–") + self.ellipsis
            slots[b][i] = candidate
            if self.layout(slots) is not None:
                best, lo = candidate, mid + 1
            else:
                hi = mid - 1
        slots[b][i] = ""
        return best

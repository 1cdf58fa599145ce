"""Reading and checking template files: :func:`check_template` reads one file and reports every problem with
file, line and field, as the rules loader does for rule files; :func:`load_templates` reads a folder and checks
the references between its templates; :func:`compose_templates` gives the console its templates, all or none."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hub.cap.model import Category, Certainty, ResponseType, Severity, Urgency
from hub.decide.rules.problems import Bad, Locator, Problem, RulesError, read_toml
from hub.decide.rules.templates import (
    ALERT_PLACEHOLDERS,
    AUDIENCES,
    BIWAPP_CATEGORIES,
    COMMON_PLACEHOLDERS,
    COMPOSE_CHANNELS,
    COMPOSE_FOLDER,
    COMPOSE_PLACEHOLDERS,
    KINDS,
    LANGUAGE_TAGS,
    LANGUAGES_WANTED,
    MAX_DEFAULT_HOURS,
    PLACEHOLDERS,
    REVIEW_EVERY_DAYS,
    REVIEW_KEYS,
    SENSOR_PLACEHOLDERS,
    TEMPLATE_KEYS,
    TEXT_KEYS,
    Template,
    Text,
    day,
    placeholders,
)
from hub.decide.rules.values import (
    EVC_RE,
    ISC_RE,
    LANG_RE,
    NAME_RE,
    choices,
    enum_value,
    enum_values,
    matching,
    number,
    one_str,
    show,
    whole,
)
from hub.i18n.languages import code_of


def _date(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise Bad(f"expected a date such as 2026-10-01 (no quotes, no time), got {show(value)}")
    return value


def _one_of(allowed: Sequence[str], what: str, *, also: Sequence[str] = ()) -> Callable[[Any], str]:
    """One of ``allowed`` (or of ``also``, accepted but not suggested)."""

    def conv(value: Any) -> str:
        if not isinstance(value, str) or value.strip() not in (*allowed, *also):
            close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"one of: {', '.join(allowed)}"
            raise Bad(f"{show(value)} is not a {what} ({hint})")
        return value.strip()

    return conv


def _unique(conv: Callable[[Any], tuple[str, ...]]) -> Callable[[Any], tuple[str, ...]]:
    def checked(value: Any) -> tuple[str, ...]:
        items = conv(value)
        twice = next((i for n, i in enumerate(items) if i in items[:n]), None)
        if twice is not None:
            raise Bad(f"{twice!r} is named twice")
        return items

    return checked


def template_paths(folder: Path) -> list[Path]:
    """The ``*.toml`` files of one templates folder (not of its subfolders)."""
    return sorted(p for p in folder.glob("*.toml") if p.is_file() and not p.name.startswith(".")) \
        if folder.is_dir() else []


def check_template(path: Path, problems: list[Problem], *, compose: bool = False) -> Template | None:
    """Read and check one template file, adding every problem (file, line, field) to ``problems``.

    ``compose``: a console template (``title`` required; only ``{ort} {district} {time} {until}``). Returns None
    when the file has errors."""
    read = read_toml(path, problems)
    if read is None:
        return None
    data, file = read
    before = len(problems)
    if not NAME_RE.match(path.stem):
        file.error((), f"template file name {path.stem!r}: use lower case letters, digits, . _ -")
    file.unknown_keys(data, (), TEMPLATE_KEYS)
    for key in ("event", "category", "severity", "text"):
        if key not in data:
            file.error((), f"missing {key}")
    if compose and "title" not in data:
        file.error((), "missing title (the name the console shows)")
    core = _core_fields(data, file)
    meta = _console_fields(data, file, compose=compose, kind=core["kind"])
    texts, uses = _texts(data, file, compose=compose, problems=problems, before=before)
    if "until" in uses and meta["default_hours"] is None and compose:
        lang = next(lang for lang, t in texts.items() if "until" in placeholders(t.headline + t.description
                                                                                  + t.instruction))
        file.error(("text", lang), "says {until}: set default_hours, the validity the console offers")
    if any(not p.warning for p in problems[before:]):
        return None
    return Template(name=path.stem, file=str(path), texts=texts, uses=frozenset(uses - COMMON_PLACEHOLDERS),
                    **core, **meta)


def _core_fields(data: Mapping[str, Any], file: Any) -> dict[str, Any]:
    """What a CAP info needs: event, category, severity…, codes, kind."""
    g = file.get
    evc = g(data, (), "event_code", matching(EVC_RE, "a BBK event code (BBK-EVC-nnn)"), ())
    if len(evc) > 1:
        file.error(("event_code",), "one event code per template")
    isc = g(data, (), "instruction_codes",
            _unique(matching(ISC_RE, "a BBK instruction code (BBK-ISC-nnn)")), ())
    return {"event": g(data, (), "event", one_str, ""),
            "categories": g(data, (), "category", enum_values(Category), ()),
            "severity": g(data, (), "severity", enum_value(Severity), Severity.UNKNOWN),
            "urgency": g(data, (), "urgency", enum_value(Urgency), Urgency.EXPECTED),
            "certainty": g(data, (), "certainty", enum_value(Certainty), Certainty.LIKELY),
            "response_types": g(data, (), "response_type", enum_values(ResponseType), ()),
            "event_code": evc[0] if evc else None, "instruction_codes": isc,
            "kind": KINDS[g(data, (), "kind", _one_of(("warning", "all-clear"), "kind", also=("all_clear",)),
                            "warning")],
            "web": g(data, (), "web", one_str), "contact": g(data, (), "contact", one_str)}


def _console_fields(data: Mapping[str, Any], file: Any, *, compose: bool, kind: str) -> dict[str, Any]:
    """Title, category, review, all-clear and the console's defaults."""
    g = file.get
    out = {"title": g(data, (), "title", one_str),
           "biwapp_category": g(data, (), "biwapp_category", _one_of(BIWAPP_CATEGORIES, "BIWAPP category")),
           "reviewed": g(data, (), "reviewed", _date), "reviewed_by": g(data, (), "reviewed_by", one_str),
           "review_every_days": g(data, (), "review_every_days", whole(1, 3650), REVIEW_EVERY_DAYS),
           "all_clear": g(data, (), "all_clear", one_str),
           "default_hours": g(data, (), "default_hours", number(gt=0, le=MAX_DEFAULT_HOURS)),
           "default_channels": g(data, (), "default_channels", _unique(choices(COMPOSE_CHANNELS, "channel")),
                                 ()),
           "audience": g(data, (), "audience", _one_of(AUDIENCES, "audience"), "public")}
    if out["reviewed"] is not None and out["reviewed"] > day(datetime.now(UTC)):  # today in Lüchow, not the host
        file.error(("reviewed",), f"{out['reviewed']} lies in the future", warning=True)
    if out["reviewed_by"] is not None and "reviewed" not in data:
        file.error(("reviewed_by",), "reviewed_by without reviewed (the date of the review)")
    if compose and "reviewed" not in data:
        file.error((), "never reviewed (add reviewed = 2026-10-01 and reviewed_by): the console shows it as due",
                   warning=True)
    elif compose and "reviewed_by" not in data:
        file.error(("reviewed",), "reviewed without reviewed_by (who checked the texts)", warning=True)
    if out["audience"] == "topic" and set(out["default_channels"]) - {"push"}:
        file.error(("default_channels",), 'a topic message goes by push to its subscribers only: ["push"]')
    if kind == "all_clear" and "all_clear" in data:
        file.error(("all_clear",), "an all-clear has no all-clear of its own")
    elif out["all_clear"] is not None and out["all_clear"] == Path(file.name).stem:
        file.error(("all_clear",), "names this template itself; name the all-clear template")
    elif compose and kind == "warning" and "all_clear" not in data:
        file.error((), "no all_clear: the console cannot offer the matching Entwarnung", warning=True)
    return out


def _texts(data: Mapping[str, Any], file: Any, *, compose: bool, problems: list[Problem],
           before: int) -> tuple[dict[str, Text], set[str]]:
    texts: dict[str, Text] = {}
    uses: set[str] = set()
    raw_texts = data.get("text")
    if raw_texts is not None and not isinstance(raw_texts, dict):
        file.error(("text",), 'expected tables [text."de-DE"], [text."de-DE-x-ls"], [text.en]')
        raw_texts = {}
    seen: dict[str, str] = {}
    for lang, raw in (raw_texts or {}).items():
        where = ("text", lang)
        if not _language_ok(lang, raw, where, file, seen):
            continue
        file.unknown_keys(raw, where, (*TEXT_KEYS, *REVIEW_KEYS))
        for key in ("headline", "description"):
            if key not in raw:
                file.error(where, f"missing {key}")
        parts = {k: file.get(raw, where, k, one_str, "") for k in TEXT_KEYS}
        for key, text in parts.items():
            uses.update(_check_placeholders(text, (*where, key), file, compose=compose))
        texts[lang] = Text(parts["headline"], parts["description"], parts["instruction"], **_review(raw, where, file))
    if compose:
        _same_placeholders(texts, file)
    # "$.text" has no line of its own: point at the first [text.LANG] table
    at = file.loc.line(("text", next(iter(raw_texts)))) if raw_texts else None
    if raw_texts and "de-DE" not in texts and not any(p.field.startswith("$.text") for p in problems[before:]):
        problems.append(Problem(file.name, at, "$.text", 'German is required: add [text."de-DE"]'))
    for lang in LANGUAGES_WANTED[1:]:
        if raw_texts is not None and lang not in (raw_texts or {}):
            problems.append(Problem(file.name, at, "$.text", f'no [text."{lang}"]', True))
    if uses & SENSOR_PLACEHOLDERS and uses & ALERT_PLACEHOLDERS:
        file.error(("text",), "mixes sensor and alert placeholders; a draft has one or the other")
    return texts, uses


def _language_ok(lang: str, raw: Any, where: tuple[str, ...], file: Any, seen: dict[str, str]) -> bool:
    """A tag of one of the nine languages (hub.i18n), each language once, with a table of texts."""
    code = code_of(lang) if LANG_RE.match(lang) else None
    if code is None:
        file.error(where, f"{lang!r} is not a tag of one of the nine languages ({', '.join(LANGUAGE_TAGS)})")
        return False
    if code in seen:
        file.error(where, f"{lang!r} is the same language as {seen[code]!r}; give each language once")
        return False
    seen[code] = lang
    if not isinstance(raw, dict):
        file.error(where, "expected a table with headline, description, instruction")
        return False
    return True


def _review(raw: Mapping[str, Any], where: tuple[str, ...], file: Any) -> dict[str, Any]:
    """``reviewed_by`` and ``reviewed_on`` of one language: both given, or both empty (unreviewed)."""
    by = file.get(raw, where, "reviewed_by", lambda v: v.strip() if isinstance(v, str) else one_str(v), "")
    on = raw.get("reviewed_on")
    if on == "":
        on = None
    elif on is not None:
        on = file.get(raw, where, "reviewed_on", _date)
    if bool(by) != (on is not None):
        file.error((*where, "reviewed_by" if on is not None else "reviewed_on"),
                   "give reviewed_by and reviewed_on together (both empty: not yet reviewed by a native speaker)")
    return {"reviewed_by": by, "reviewed_on": on}


def _same_placeholders(texts: Mapping[str, Text], file: Any) -> None:
    """Every language's headline, description and instruction use exactly the placeholders of the German one:
    a translation that loses ``{until}`` would hide the end of a closure from its readers."""
    german = texts.get("de-DE")
    if german is None:
        return
    for lang, text in texts.items():
        for key in TEXT_KEYS:
            try:
                want, got = set(placeholders(getattr(german, key))), set(placeholders(getattr(text, key)))
            except ValueError:
                continue  # reported as a broken placeholder
            lost = ", ".join(f"{{{p}}}" for p in sorted(want - got))
            added = ", ".join(f"{{{p}}}" for p in sorted(got - want))
            if lost:
                file.error(("text", lang, key), f"loses {lost} of the German text (every language says the same)")
            if added:
                file.error(("text", lang, key), f"adds {added}, which the German text does not have")


def _check_placeholders(text: str, where: tuple[str, ...], file: Any, *, compose: bool) -> list[str]:
    try:
        used = placeholders(text)
    except ValueError as err:
        file.error(where, f"broken placeholder: {err} (write {{{{ and }}}} for braces)")
        return []
    known = COMPOSE_PLACEHOLDERS if compose else PLACEHOLDERS
    for ph in used:
        if ph in known:
            continue
        if compose:
            note = " (the console fills only these)"
        elif ph in COMPOSE_PLACEHOLDERS:
            note = " (only console templates in templates/compose/ have it)"
        else:
            note = ""
        file.error(where, f"unknown placeholder {{{ph}}}{note} (known: {', '.join(sorted(known))})")
    return used


def load_templates(folder: Path, problems: list[Problem], *, compose: bool = False) -> dict[str, Template]:
    """Every template of ``folder`` (a templates folder itself) by name, checked; ``all_clear`` must name an
    all-clear template of the same folder. Templates with errors are left out; ``problems`` says why."""
    paths = template_paths(folder)
    found: dict[str, Template] = {}
    for path in paths:
        template = check_template(path, problems, compose=compose)
        if template is not None:
            found[template.name] = template
    names = [p.stem for p in paths]
    for template in list(found.values()):
        target = template.all_clear
        if target is None:
            continue
        if target not in names:
            close = difflib.get_close_matches(target, names, n=1)
            message = f"unknown template {target!r}" + (f" (did you mean {close[0]}?)" if close else
                                                         f" (no {target}.toml beside this file)")
        elif target in found and found[target].kind != "all_clear":
            message = f"template {target!r} is not an all-clear (kind = \"all-clear\")"
        else:
            continue
        line = Locator(Path(template.file).read_text(encoding="utf-8")).line(("all_clear",))
        problems.append(Problem(template.file, line, "$.all_clear", message))
        del found[template.name]
    return found


def check_compose(folder: Path) -> list[Problem]:
    """Every problem (errors and warnings) of the console templates of the rules folder ``folder``."""
    problems: list[Problem] = []
    load_templates(Path(folder) / COMPOSE_FOLDER, problems, compose=True)
    return problems


def compose_templates(folder: Path) -> list[Template]:
    """The templates the console composes from: ``templates/compose/*.toml`` of the rules folder ``folder``,
    warnings first, then all-clears, each by title. None there: ``[]``.

    Raises :class:`~hub.decide.rules.problems.RulesError` naming every problem (file, line, field) when any file
    is wrong: the console offers all of them or none, never a half-checked text."""
    problems: list[Problem] = []
    found = load_templates(Path(folder) / COMPOSE_FOLDER, problems, compose=True)
    if any(not p.warning for p in problems):
        raise RulesError(problems)
    return sorted(found.values(), key=lambda t: (t.kind != "warning", (t.title or t.name).casefold()))

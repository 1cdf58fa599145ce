"""Reading config.toml: decoded strictly into the Structs of :mod:`hub.config.sections`, then checked as a whole.

Unknown fields, wrong types and bad values are refused with the file and the path inside it
(``config.toml: $.sources[0]: Object contains unknown field `intervall_s```). Secrets never live in the file: a
string value ``"env:NAME"`` is read from the environment variable NAME. Relative paths resolve against the
config file's folder, so a copy of the checkout runs with its own store.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec

from hub.cap.sign import SignaturePolicy
from hub.config.districts import Districts
from hub.config.districts import of as districts_of
from hub.config.sections import (
    BoardConfig,
    Config,
    HttpSourceConfig,
    MqttSourceConfig,
    SensorConfig,
    SourceConfig,
    WebhookConfig,
)
from hub.errors import ConfigError
from hub.geo.geography import with_extra_boundaries
from hub.i18n.languages import CODES, code_of


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A decoded config and the file it came from (for resolving relative paths)."""

    cfg: Config
    file: Path

    @property
    def base(self) -> Path:
        return self.file.parent

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p)

    @property
    def db_path(self) -> Path:
        return self.path(self.cfg.hub.db)

    @property
    def store_target(self) -> Path | str:
        """Where the store is: the PostgreSQL URL (``[store] url``, with ``[store] password``), else the SQLite file."""
        url, password = self.cfg.store.url, self.cfg.store.password
        if url is None:
            return self.db_path
        if password is None:
            return url
        scheme, _, rest = url.partition("://")
        user, at, host = rest.rpartition("@")
        if not at:
            raise ConfigError(f"{self.file}: $.store.url: a password needs a user (postgresql://user@host/db)")
        return f"{scheme}://{user.partition(':')[0]}:{quote(password, safe='')}@{host}"

    @property
    def rules_dir(self) -> Path:
        return self.path(self.cfg.hub.rules)

    @property
    def districts(self) -> Districts:
        """The districts this hub serves (:mod:`hub.config.districts`): ``[[districts]]``, or the one of ``[hub]``."""
        return districts_of(self)

    @property
    def sensors(self) -> list[SensorConfig]:
        return [s for src in self.cfg.sources if isinstance(src, MqttSourceConfig) for s in src.sensors]

    def geography(self) -> Any:
        """The bundled geography plus ``[geo] boundaries`` (:class:`hub.geo.geography.Geography`; ConfigError if a
        file is unusable)."""

        return with_extra_boundaries((self.path(p) for p in self.cfg.geo.boundaries),
                                     bundled=self.cfg.geo.bundled_gemeinden)

    def source_policy(self, source: SourceConfig | HttpSourceConfig) -> SignaturePolicy:
        return SignaturePolicy(getattr(source, "signature", None) or self.cfg.validation.signature_policy)


TOKEN_MIN = 16
"""Characters of a kiosk board's token at least: not guessable."""
_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


def _resolve_env(value: Any, path: str, file: Path) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}", file) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", file) for i, v in enumerate(value)]
    if isinstance(value, str):
        match = _ENV.match(value)
        if match:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{file}: {path}: environment variable {name} is not set")
            return os.environ[name]
    return value


def load(file: Path | str) -> LoadedConfig:
    """Read and check a config file exactly as ``warnhub run`` would; ConfigError names file and path."""
    file = Path(file).resolve()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{file}: no such config file") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{file}: not UTF-8: {err}") from err
    raw = _resolve_env(raw, "$", file)
    try:
        cfg = msgspec.convert(raw, type=Config, strict=True)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{file}: {_where_first(str(err))}") from err
    if cfg.districts and not cfg.hub.district_ars:
        cfg = msgspec.structs.replace(cfg, hub=msgspec.structs.replace(cfg.hub, district_ars=cfg.districts[0].ars))
    loaded = LoadedConfig(cfg, file)
    _check(loaded)
    _check_districts(loaded)
    return loaded


def _check_districts(loaded: LoadedConfig) -> None:
    """``[[districts]]``: distinct Kreise, slugs and hosts; the first is ``[hub] district_ars``; every board and
    webhook names a district that exists; files named exist."""
    cfg, file = loaded.cfg, loaded.file
    if not cfg.hub.district_ars:
        raise ConfigError(f"{file}: $.hub.district_ars: required (or list the Kreise in [[districts]])")
    slugs = {d.slug for d in cfg.districts}
    if cfg.districts:
        if cfg.hub.district_ars != cfg.districts[0].ars:
            raise ConfigError(f"{file}: $.hub.district_ars: {cfg.hub.district_ars} is not the first district's ars "
                              f"({cfg.districts[0].ars}); leave it out or make them equal")
        seen: dict[str, set[str]] = {"ars": set(), "slug": set(), "host": set()}
        for i, d in enumerate(cfg.districts):
            if not d.ars.endswith("0000000"):
                raise ConfigError(f"{file}: $.districts[{i}].ars: {d.ars} is not a Kreis key (last 7 digits 0)")
            for what, value in (("ars", d.ars), ("slug", d.slug), ("host", d.host.lower())):
                if value and value in seen[what]:
                    raise ConfigError(f"{file}: $.districts[{i}].{what}: {value!r} is used twice")
                seen[what].add(value)
            if d.slug in RESERVED_SLUGS:
                raise ConfigError(f"{file}: $.districts[{i}].slug: {d.slug!r} is a path of the hub itself")
            if (d.signing_key is None) != (d.signing_cert is None):
                raise ConfigError(f"{file}: $.districts[{i}].signing_key/signing_cert: give both or neither")
            for key in ("signing_key", "signing_cert", "logo"):
                name = getattr(d, key)
                if name is not None and not loaded.path(name).is_file():
                    raise ConfigError(f"{file}: $.districts[{i}].{key}: file {loaded.path(name)} does not exist")
            if d.logo is not None and loaded.path(d.logo).stat().st_size > 256 * 1024:
                raise ConfigError(f"{file}: $.districts[{i}].logo: larger than 256 kB")
            if d.templates is not None and not loaded.path(d.templates).is_dir():
                raise ConfigError(f"{file}: $.districts[{i}].templates: folder {loaded.path(d.templates)} "
                                  "does not exist")
    for what, items in lists_of(cfg):
        for i, item in enumerate(items):
            if item.district is not None and item.district not in slugs:
                raise ConfigError(f"{file}: $.{what}[{i}].district: {item.district!r} is no district's slug "
                                  f"({', '.join(sorted(slugs)) or 'no [[districts]]'})")


def lists_of(cfg: Config) -> tuple[tuple[str, Sequence[BoardConfig | WebhookConfig]], ...]:
    return (("boards", cfg.boards), ("webhooks", cfg.webhooks))


RESERVED_SLUGS = frozenset({"api", "api31", "console", "feeds", "static", "boards", "widget", "warnungen",
                            "abonnieren", "datenschutz", "i18n", "healthz", "metrics", "sw.js", "start.json",
                            "provider", "exercise"})
"""First path segments the hub serves itself: no district may take one as its slug."""


def _where_first(message: str) -> str:
    """msgspec says ``Object contains unknown field `x` - at `$.sources[0]```; put the path first."""
    head, sep, where = message.rpartition(" - at ")
    return f"{where.strip('`')}: {head}" if sep else message


_NON_LATIN = ("ar", "ru")
"""Board languages written in a script a latin-1 or ascii board cannot show (their words would be question marks)."""


def _check_board_language(file: Path | str, i: int, board: BoardConfig) -> None:
    code = code_of(board.language)
    if code is None:
        raise ConfigError(f"{file}: $.boards[{i}].language: {board.language!r} is none of the hub's languages "
                          f"({', '.join(CODES)})")
    if code in _NON_LATIN and board.charset != "utf-8":
        raise ConfigError(f"{file}: $.boards[{i}].language: {board.language!r} needs charset = \"utf-8\" "
                          f"(a {board.charset} board cannot show its script)")


def _check(loaded: LoadedConfig) -> None:
    url = loaded.cfg.store.url
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{loaded.file}: $.store.url: {url!r} is no postgresql:// URL")
    cfg, file = loaded.cfg, loaded.file
    seen: set[str] = set()
    for i, source in enumerate(cfg.sources):
        if source.name in seen:
            raise ConfigError(f"{file}: $.sources[{i}].name: {source.name!r} is used twice")
        if source.name == "canary":  # the origin of the hub's own canaries (hub.decide.canary), decided without rules
            raise ConfigError(f"{file}: $.sources[{i}].name: 'canary' is the hub's own canaries' origin")
        seen.add(source.name)
    for what, items in lists_of(cfg):
        ids: set[str] = set()
        for i, item in enumerate(items):
            if item.id in ids:
                raise ConfigError(f"{file}: $.{what}[{i}].id: {item.id!r} is used twice")
            ids.add(item.id)
    for i, board in enumerate(cfg.boards):
        need = {"mqtt": ("topic",), "http": ("url", "secret"), "kiosk": ()}[board.kind]
        for field in need:
            if not getattr(board, field):
                raise ConfigError(f"{file}: $.boards[{i}].{field}: required for a board of kind {board.kind!r}")
        if board.kind == "kiosk" and board.exercise and len(board.token or "") < TOKEN_MIN:
            raise ConfigError(f"{file}: $.boards[{i}].token: a kiosk board with exercise = true needs a secret token "
                              f"of at least {TOKEN_MIN} characters")
        if board.kind == "kiosk" and board.canary:
            raise ConfigError(f"{file}: $.boards[{i}].canary: only boards of kind mqtt or http take a canary (a kiosk "
                              "page reads the publications itself)")
        _check_board_language(file, i, board)
    for i, hook in enumerate(cfg.webhooks):
        if not hook.url.startswith(("https://", "http://")):
            raise ConfigError(f"{file}: $.webhooks[{i}].url: {hook.url!r} is not an http(s) URL")
    for i, name in enumerate(cfg.geo.boundaries):
        if not loaded.path(name).is_file():
            raise ConfigError(f"{file}: $.geo.boundaries[{i}]: file {loaded.path(name)} does not exist")
    if (cfg.hub.signing_key is None) != (cfg.hub.signing_cert is None):
        raise ConfigError(f"{file}: $.hub.signing_key/signing_cert: give both or neither")
    for key in ("signing_key", "signing_cert"):
        name = getattr(cfg.hub, key)
        if name is not None and not loaded.path(name).is_file():
            raise ConfigError(f"{file}: $.hub.{key}: file {loaded.path(name)} does not exist")
    for i, proxy in enumerate(cfg.web.trusted_proxies):
        try:
            ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"{file}: $.web.trusted_proxies[{i}]: {proxy!r} is not an IP address or network"
                              ) from None
    if cfg.hub.district_ars and not cfg.hub.district_ars.endswith("0000000"):
        raise ConfigError(f"{file}: $.hub.district_ars: {cfg.hub.district_ars} is not a Kreis key (last 7 digits 0)")
    if cfg.validation.trust_store is not None and not loaded.path(cfg.validation.trust_store).is_dir():
        raise ConfigError(f"{file}: $.validation.trust_store: folder {loaded.path(cfg.validation.trust_store)} "
                          "does not exist")

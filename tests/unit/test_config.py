"""config.toml: strict decoding, errors that name the file and the path, env: secrets, relative paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.config import load as config_mod
from hub.config.sections import DirectorySourceConfig, DwdSourceConfig, MqttSourceConfig, NinaSourceConfig
from hub.errors import ConfigError
from tests.kits import paths

BUNDLED = paths.REPO / "config.toml"


@pytest.fixture
def base_text() -> str:
    return BUNDLED.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config_mod.load(path)
    message = str(info.value)
    assert str(path.resolve()) in message, message  # every refusal names the file
    return message


def test_bundled_config_loads() -> None:
    """Invariant: the example config shipped with the hub is itself valid (operators start from it)."""
    loaded = config_mod.load(BUNDLED)
    cfg = loaded.cfg
    assert cfg.hub.name == "Landkreis Lüchow-Dannenberg"
    assert cfg.hub.district_ars == "033540000000"
    assert cfg.web.port == 8080
    assert [s.name for s in cfg.sources] == ["cap-inbox", "dwd", "nina", "sensors"]
    assert isinstance(cfg.sources[0], DirectorySourceConfig)
    dwd, nina, mqtt = cfg.sources[1:]
    assert isinstance(dwd, DwdSourceConfig) and "103354000" in dwd.warncells
    assert isinstance(nina, NinaSourceConfig) and nina.missing_fetches_to_end == 3
    assert isinstance(mqtt, MqttSourceConfig) and {s.id for s in mqtt.sensors} == {"pegel-hitzacker", "wind-luechow"}
    assert loaded.db_path == BUNDLED.parent / "var" / "warnhub.db"


def test_unknown_field_is_refused_with_file_and_path(tmp_path: Path, base_text: str) -> None:
    """Invariant: a typo in the config is never silently ignored; the message names the file and $.sources[0]."""
    assert "interval_s = 1.0" in base_text
    path = write(tmp_path, base_text.replace("interval_s = 1.0", "intervall_s = 1.0"), "typo.toml")
    message = refused(path)
    assert "typo.toml" in message
    assert "$.sources[0]" in message
    assert "intervall_s" in message


def test_unknown_top_level_section_is_refused(tmp_path: Path, base_text: str) -> None:
    """Invariant: a whole misspelt section is refused too, not just fields."""
    message = refused(write(tmp_path, base_text + '\n[webb]\nport = 1\n'))
    assert "webb" in message


@pytest.mark.parametrize(("old", "new", "where"), [
    ("port = 8080", 'port = "8080"', "$.web.port"),
    ("port = 8080", "port = 8080.5", "$.web.port"),
    ("interval_s = 1.0", 'interval_s = "fast"', "$.sources[0].interval_s"),
    ('log_level = "INFO"', "log_level = 20", "$.hub.log_level"),
])
def test_wrong_type_is_refused(tmp_path: Path, base_text: str, old: str, new: str, where: str) -> None:
    """Invariant: values of the wrong type are refused (no guessing), naming the path."""
    assert old in base_text
    message = refused(write(tmp_path, base_text.replace(old, new)))
    assert where in message
    assert "Expected" in message


@pytest.mark.parametrize(("old", "new", "where"), [
    ('district_ars = "033540000000"', 'district_ars = "03354"', "$.hub.district_ars"),
    ('district_ars = "033540000000"', 'district_ars = "03354000000X"', "$.hub.district_ars"),
    ('district_ars = "033540000000"', 'district_ars = "033540001234"', "$.hub.district_ars"),  # a Gemeinde
    ("port = 8080", "port = 70000", "$.web.port"),
    ("port = 8080", "port = -1", "$.web.port"),
    ("interval_s = 1.0", "interval_s = 0", "$.sources[0].interval_s"),
    ('name = "cap-inbox"', 'name = "Cap Inbox"', "$.sources[0].name"),
    ('signature_policy = "verify"', 'signature_policy = "maybe"', "$.validation.signature_policy"),
    ('synchronous = "NORMAL"', 'synchronous = "OFF"', "$.store.synchronous"),
])
def test_bad_value_is_refused(tmp_path: Path, base_text: str, old: str, new: str, where: str) -> None:
    """Invariant: out-of-range or malformed values are refused at load, naming the path - not at 3 a.m. in use."""
    assert old in base_text
    message = refused(write(tmp_path, base_text.replace(old, new)))
    assert where in message


def test_unknown_source_type_is_refused(tmp_path: Path, base_text: str) -> None:
    """Invariant: a source type the hub does not know is refused (never skipped: a missing source is a silent gap)."""
    path = write(tmp_path, base_text.replace('type = "directory"', 'type = "ftp"'))
    message = refused(path)
    assert "$.sources[0].type" in message
    assert "ftp" in message


def test_duplicate_source_names_are_refused(tmp_path: Path, base_text: str) -> None:
    """Invariant: source names are unique - they label health, metrics and the origin of every stored alert."""
    text = base_text + '\n[[sources]]\ntype = "directory"\nname = "cap-inbox"\npath = "var/other"\n'
    message = refused(write(tmp_path, text))
    assert "$.sources[4].name" in message
    assert "cap-inbox" in message
    assert "twice" in message


def test_env_value_is_read_from_environment(tmp_path: Path, base_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant: 'env:NAME' takes the value from the environment, so secrets never live in the file."""
    monkeypatch.setenv("WARNHUB_TEST_DB", str(tmp_path / "secret-place" / "hub.db"))
    monkeypatch.setenv("WARNHUB_TEST_NAME", "Landkreis aus der Umgebung")
    text = base_text.replace('db = "var/warnhub.db"', 'db = "env:WARNHUB_TEST_DB"')
    text = text.replace('name = "Landkreis Lüchow-Dannenberg"', 'name = "env:WARNHUB_TEST_NAME"')
    loaded = config_mod.load(write(tmp_path, text))
    assert loaded.cfg.hub.name == "Landkreis aus der Umgebung"
    assert loaded.db_path == tmp_path / "secret-place" / "hub.db"


def test_missing_env_variable_is_refused_naming_the_path(tmp_path: Path, base_text: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant: an 'env:' value whose variable is unset is refused, naming the path and the variable
    (never an empty secret)."""
    monkeypatch.delenv("WARNHUB_TEST_UNSET", raising=False)
    path = write(tmp_path, base_text.replace('path = "var/inbox"', 'path = "env:WARNHUB_TEST_UNSET"'))
    message = refused(path)
    assert "$.sources[0].path" in message
    assert "WARNHUB_TEST_UNSET" in message


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant: a copy of the config runs with its own store and inbox, wherever the hub is started from."""
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(BUNDLED, folder / "config.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = config_mod.load(Path("..") / "copy" / "config.toml")
    assert loaded.file == (folder / "config.toml").resolve()
    assert loaded.db_path == folder.resolve() / "var" / "warnhub.db"
    assert loaded.db_path.is_relative_to(tmp_path.resolve())
    assert loaded.path(loaded.cfg.sources[0].path) == folder.resolve() / "var" / "inbox"
    assert loaded.path(str(tmp_path / "abs")) == tmp_path / "abs"  # absolute paths stay as they are


def test_invalid_toml_is_refused_naming_the_file(tmp_path: Path, base_text: str) -> None:
    """Invariant: a syntax error is reported with the file (and TOML's line), not as a traceback."""
    path = write(tmp_path, base_text.replace('name = "cap-inbox"', 'name = "cap-inbox'), "broken.toml")
    message = refused(path)
    assert "broken.toml" in message
    assert "not valid TOML" in message
    assert "line" in message


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    """Invariant: a missing config file is a clear ConfigError, not a traceback."""
    message = refused(tmp_path / "nowhere.toml")
    assert "no such config file" in message


def test_missing_trust_store_folder_is_refused(tmp_path: Path, base_text: str) -> None:
    """Invariant: a configured trust store that does not exist is refused (signatures would silently never verify)."""
    text = base_text.replace('# trust_store = "trust"', 'trust_store = "trust"')
    path = write(tmp_path, text)
    message = refused(path)
    assert "$.validation.trust_store" in message
    (tmp_path / "trust").mkdir()
    assert config_mod.load(path).cfg.validation.trust_store == "trust"


@pytest.mark.parametrize("token", [None, "kurz"])
def test_exercise_kiosk_board_needs_a_secret_token(tmp_path: Path, base_text: str, token: str | None) -> None:
    """Invariant: exercise never public. A kiosk board that shows exercises needs a token that is not guessable
    (its page and stream answer only with it), so whoever knows the board's id cannot watch exercises."""
    board = '\n[[boards]]\nid = "schulung"\nname = "Schulungsraum"\nars = "033540000000"\nkind = "kiosk"\n'
    line = f'token = "{token}"\n' if token else ""
    message = refused(write(tmp_path, base_text + board + "exercise = true\n" + line))
    assert "$.boards[0].token" in message and "exercise" in message and "16" in message
    ok = config_mod.load(write(tmp_path, base_text + board + 'exercise = true\ntoken = "Schulung-2026-geheim-xyz"\n'))
    assert ok.cfg.boards[0].token == "Schulung-2026-geheim-xyz"
    assert config_mod.load(write(tmp_path, base_text + board)).cfg.boards[0].token is None  # a public board


@pytest.mark.parametrize(("lines", "problem"), [('language = "uk"\n', "none of the hub's languages"),
                                                ('language = "ru"\ncharset = "ascii"\n', "utf-8"),
                                                ('language = "ar"\ncharset = "latin-1"\n', "utf-8")])
def test_a_board_speaks_one_of_the_hubs_languages_in_a_charset_that_shows_it(tmp_path: Path, base_text: str,
                                                                            lines: str, problem: str) -> None:
    board = '\n[[boards]]\nid = "tafel"\nname = "Tafel"\nars = "033540000000"\nkind = "kiosk"\n'
    message = refused(write(tmp_path, base_text + board + lines))
    assert "$.boards[0].language" in message and problem in message
    for fine in ('language = "pl"\ncharset = "latin-1"\n', 'language = "ru"\n', 'language = "DE-LS"\n', ""):
        assert config_mod.load(write(tmp_path, base_text + board + fine)).cfg.boards[0].id == "tafel"


def test_canaries_are_off_unless_configured_and_a_kiosk_cannot_be_one(tmp_path: Path, base_text: str) -> None:
    """[canary]: off by default (300 s, 30 s); per-channel SLOs; a kiosk page reads publications itself, so a kiosk
    board marked canary is refused (it could never acknowledge); no source may be named canary (the origin of the
    hub's own canaries, which the rules never see)."""
    assert config_mod.load(write(tmp_path, base_text)).cfg.canary.enabled is False
    canary = '\n[canary]\nenabled = true\npush_subscriptions = ["abc"]\nchannel_slo_s = { push = 60 }\n'
    cfg = config_mod.load(write(tmp_path, base_text + canary)).cfg.canary
    assert (cfg.enabled, cfg.interval_s, cfg.slo_for("push"), cfg.slo_for("webhooks")) == (True, 300, 60, 30)
    board = '\n[[boards]]\nid = "tafel"\nname = "Tafel"\nars = "033540000000"\nkind = "kiosk"\ncanary = true\n'
    message = refused(write(tmp_path, base_text + board))
    assert "$.boards[0].canary" in message and "mqtt or http" in message
    first = base_text.index('\nname = "', base_text.index("[[sources]]"))  # the canaries' origin is the hub's own
    taken = base_text[:first] + '\nname = "canary"' + base_text[base_text.index("\n", first + 1):]
    message = refused(write(tmp_path, taken))
    assert "$.sources[0].name" in message and "canary" in message


def test_store_url_with_its_password_from_the_environment(tmp_path: Path, base_text: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``[store] url`` puts the store in PostgreSQL; its password comes from ``env:NAME`` (quoted into the URL),
    and without a url the store stays the SQLite file ``[hub] db``."""
    assert config_mod.load(write(tmp_path, base_text)).store_target == tmp_path / "var" / "warnhub.db"
    monkeypatch.setenv("WARNHUB_TEST_PG", "p@ss/w:rd")
    text = base_text.replace("[store]\n", '[store]\nurl = "postgresql://warnhub@db.kreis.example:5433/hub"\n'
                                          'password = "env:WARNHUB_TEST_PG"\n')
    loaded = config_mod.load(write(tmp_path, text))
    assert loaded.store_target == "postgresql://warnhub:p%40ss%2Fw%3Ard@db.kreis.example:5433/hub"
    wrong = base_text.replace("[store]\n", '[store]\nurl = "mysql://warnhub@db/hub"\n')
    assert "$.store.url" in refused(write(tmp_path, wrong))

"""The core finds its adapters through entry points (hub/registry.py): what pyproject.toml declares is what the
registry loads, every config source type has a source, and a plugin installed as its own distribution is found
through its metadata (as the installed warnhub distribution is, outside a checkout)."""

from __future__ import annotations

import inspect
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import registry
from hub.config.sections import SourceConfig
from tests.kits import paths

GROUPS = ("sources", "channels", "converters", "push")


def declared(group: str) -> dict[str, str]:
    project = tomllib.loads((paths.REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project["entry-points"][f"warnhub.{group}"])


@pytest.fixture
def fresh() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


@pytest.mark.parametrize("group", GROUPS)
def test_registry_loads_what_pyproject_declares(group: str, fresh: None) -> None:
    assert {name: ep.value for name, ep in registry.entries(group).items()} == declared(group)
    loaded = registry._loaded(group)
    assert list(loaded) == list(declared(group))  # declaration order: push is built before the others
    for name, value in declared(group).items():
        module, attr = value.split(":")
        assert loaded[name].__module__ == module and loaded[name].__qualname__ == attr  # type: ignore[attr-defined]


def test_every_config_source_type_has_a_source_and_every_channel_a_factory(fresh: None) -> None:
    tags = {t.__struct_config__.tag for t in typing.get_args(SourceConfig)}
    assert set(registry.sources()) == tags
    for name, cls in registry.sources().items():
        assert inspect.iscoroutinefunction(cls.run), name  # type: ignore[attr-defined]
    assert set(registry.channels()) == {"push", "boards-mqtt", "boards-http", "webhooks"}
    assert all(inspect.iscoroutinefunction(f) for f in registry.channels().values())
    hooks = registry.push()
    assert hooks.check_keys("", "") is not None and hooks.check_endpoint("http://10.0.0.1/x", allow_http=False)


def _distribution(site: Path, name: str, entry_points: str, module: str = "", code: str = "") -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    if module:
        (site / f"{module}.py").write_text(code, encoding="utf-8")


PLUGIN = '''
class ExtraSource:
    def __init__(self, settings, loaded, *, max_bytes):
        self.name = settings.name

    async def run(self, ctx):
        return None
'''


def test_installed_distributions_are_read_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              fresh: None) -> None:
    site = tmp_path / "site"
    _distribution(site, "warnhub", "[warnhub.sources]\ndirectory = adapters.sources.directory:DirectorySource\n")
    _distribution(site, "warnhub-extra", "[warnhub.sources]\nextra = extra_source:ExtraSource\n",
                  "extra_source", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "CHECKOUT_PYPROJECT", tmp_path / "no-checkout" / "pyproject.toml")
    assert set(registry.sources()) == {"directory", "extra"}  # warnhub's from its installed metadata, and the plugin
    assert registry.sources()["extra"].__module__ == "extra_source"

    registry.clear()  # in a checkout, warnhub's own entries come from its pyproject.toml; the plugin stays
    monkeypatch.setattr(registry, "CHECKOUT_PYPROJECT", paths.REPO / "pyproject.toml")
    assert set(registry.sources()) == set(declared("sources")) | {"extra"}


def test_two_distributions_claiming_one_name_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         fresh: None) -> None:
    site = tmp_path / "site"
    _distribution(site, "warnhub-rival", "[warnhub.sources]\ndwd = rival:DwdSource\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(registry.RegistryError, match="'dwd' is declared by warnhub-rival and by warnhub"):
        registry.sources()

"""Every registered source type is documented for operators (README's sources table)."""


from hub import registry
from tests.kits import paths

README = paths.REPO / "README.md"


def test_every_source_type_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    for name in registry.sources():
        assert f"| `{name}` |" in text, f"source type {name!r} is registered but not in README's sources table"

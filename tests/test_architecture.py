"""Imports point one way: cli -> plugins -> core. The core never imports a plugin and a plugin
never imports another plugin; they talk through hooks only."""

import ast
from pathlib import Path

import crm

PACKAGE = Path(crm.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                base = ".".join(parts)
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def _plugin_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["crm", "plugins"] and len(parts) > 2:
        return parts[2]
    return None


def test_core_never_imports_a_plugin_or_the_cli():
    offenders = [
        (str(path.relative_to(PACKAGE)), name)
        for path in (PACKAGE / "core").rglob("*.py")
        for name in _imports(path)
        if name.startswith(("crm.plugins", "crm.cli", "crm.commands"))
    ]
    assert offenders == []


def test_plugins_never_import_each_other():
    offenders = []
    for path in (PACKAGE / "plugins").rglob("*.py"):
        own = _plugin_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for name in _imports(path):
            other = _plugin_of(name)
            if other is not None and other != own:
                offenders.append((str(path.relative_to(PACKAGE)), name))
            if name.startswith(("crm.cli", "crm.commands")):
                offenders.append((str(path.relative_to(PACKAGE)), name))
    assert offenders == []


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    # The rules above must be able to fail: a planted cross-plugin import is found.
    fake = PACKAGE / "plugins" / "analysis" / "_planted_violation.py"
    fake.write_text("from crm.plugins.service import hookimpl\n", encoding="utf-8")
    try:
        names = _imports(fake)
        assert any(_plugin_of(n) == "service" for n in names)
    finally:
        fake.unlink()


def test_the_commands_never_import_the_root_group():
    """crm.cli builds the root group and imports the command modules: a command module
    importing crm.cli back would point up (the plugin manager comes from the App instead)."""
    offenders = [
        (str(path.relative_to(PACKAGE)), name)
        for path in (PACKAGE / "commands").rglob("*.py")
        for name in _imports(path)
        if name == "crm.cli" or name.startswith("crm.cli.")
    ]
    assert offenders == []

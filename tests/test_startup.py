"""Start-up: a command loads its own module, not every command's, and a desk command loads no
library it does not compute with (issue 12; the timings are in bench/desk.py)."""

import shutil
import subprocess
import sys

from crm.cli import CrmGroup, _declare_commands

# Libraries a card look-up has no use for: the schema check's alembic (and its mako), the
# analysis stack, the scheduler, the input schemas' marshmallow, XLSX, the sample-data faker,
# and cryptography (the card shows personal data masked, so nothing is decrypted).
HEAVY = (
    "alembic",
    "mako",
    "sklearn",
    "scipy",
    "numpy",
    "pandas",
    "matplotlib",
    "apscheduler",
    "marshmallow",
    "openpyxl",
    "faker",
    "cryptography",
)
# Runs `crm ARGS…` through the console entry point, then says how it ended, whether garbage
# collection runs again (start-up defers it, crm.core.startup) and what was imported.
PROBE = """
import gc, sys
from crm.cli import main
sys.argv[0] = "crm"
try:
    main()
except SystemExit as exc:
    print("EXIT", exc.code or 0)
print("GC", gc.isenabled(), gc.get_freeze_count() > 0)
print("MODULES", " ".join(sorted(sys.modules)))
"""


def test_every_deferred_command_adds_exactly_what_it_declares():
    """A top-level command is found by the name it was declared under; a function that added
    another name (or missed one) would make `crm NAME` fail until something listed them all."""
    group = CrmGroup(name="crm")
    _declare_commands(group)
    assert len(group.deferred()) >= 25
    while group.deferred():
        name, register = next(iter(group.deferred().items()))
        declared = {n for n, r in group.deferred().items() if r is register}
        before = set(group.loaded_commands())
        assert group.get_command(None, name) is not None
        assert set(group.loaded_commands()) - before == declared
    assert "household" in group.commands and "ticket" in group.commands


def test_reading_commands_loads_them_all():
    """Code that walks the tree (the help meta-tests, completion) reads `commands`: it sees
    every command, including the ones not loaded yet."""
    group = CrmGroup(name="crm")
    _declare_commands(group)
    assert group.loaded_commands() == {}
    names = set(group.commands)
    assert {"household", "ticket", "revisit", "analysis", "init", "import"} <= names
    assert group.deferred() == {}


def test_a_card_look_up_loads_only_what_it_uses(tmp_path, sqlite_template):
    """`crm household show` in a process of its own: no heavy library, no other command's
    module, and of the plugins' models only those of the plugins that add card sections."""
    path = tmp_path / "crm.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    added = subprocess.run(
        [sys.executable, "-c", PROBE, "--db", url, "--as", "王芳:sales"]
        + ["household", "add", "H1", "--name", "张伟家", "--status", "existing"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "EXIT 0" in added.stdout, added.stderr
    shown = subprocess.run(
        [sys.executable, "-c", PROBE, "--db", url, "--as", "王芳:sales", "household", "show", "H1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "EXIT 0" in shown.stdout and "张伟家" in shown.stdout, shown.stderr
    assert "GC True True" in shown.stdout  # collecting again, start-up's objects frozen
    modules = set(shown.stdout.split("MODULES ", 1)[1].split())
    assert [m for m in HEAVY if m in modules] == []
    plugin_models = sorted(m for m in modules if m.startswith("crm.plugins.") and ".models" in m)
    assert plugin_models == ["crm.plugins.analysis.models", "crm.plugins.service.models"]
    commands = sorted(m for m in modules if m.rsplit(".", 1)[-1].endswith("commands"))
    assert commands == ["crm.commands"]
    assert "crm.commands.household" in modules and "crm.commands.transfer" not in modules
    # The add above did load marshmallow: the probe can see a library that is loaded.
    assert "marshmallow" in added.stdout.split("MODULES ", 1)[1].split()


def test_collection_is_resumed_only_where_it_was_deferred():
    """The App resumes garbage collection only in a process whose entry point deferred it: a
    library user's (or this test run's) collector is left as it is."""
    import gc

    from crm.core.startup import resume_collection

    frozen = gc.get_freeze_count()
    resume_collection()
    assert gc.isenabled() and gc.get_freeze_count() == frozen

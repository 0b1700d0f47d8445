"""The README matches the code: its column table, its commands and the CI script."""

import re
import subprocess
from pathlib import Path

import pytest

from crm.core.schemas import SCHEMAS

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_import_column_and_alias_is_documented(kind):
    section = next(
        part for part in README.split("\n### ") if part.split("(")[0].endswith(f" {kind} ")
    )
    rows = {
        line.split("|")[1].strip(): line
        for line in section.splitlines()
        if line.startswith("| ") and line.count("|") >= 5
    }
    for name, field in SCHEMAS[kind]().fields.items():
        assert name in rows, f"README lacks the {kind} column {name}"
        for alias in field.metadata.get("zh", ()):
            assert alias in rows[name], f"README lacks the alias {alias} of {kind}.{name}"


def test_readme_starts_with_the_two_setup_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.DOTALL).group(1).strip().splitlines()
    assert len(block) == 2
    assert "crm demo" in block[0] and "pytest" in block[1]
    assert README.index("```bash") < README.index("\n## ")


def test_ci_runs_the_readme_test_command():
    # .ci/run reads the command from the README; check it extracts the same line.
    script = (ROOT / ".ci" / "run").read_text()
    extract = re.search(r"test_command=\$\((.*)\)\n", script).group(1)
    got = subprocess.run(
        ["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True, check=True
    )
    block = re.search(r"```bash\n(.*?)```", README, re.DOTALL).group(1).strip().splitlines()
    assert got.stdout.strip() == block[1]
    assert "CRM_TEST_DATABASE_URL" in script
    # and a second time with the clock a year ahead
    assert 'CRM_TEST_CLOCK_SHIFT_DAYS=365 && eval "$test_command"' in script


def test_every_command_group_is_in_the_readme():
    from crm.cli import cli

    missing = [name for name in cli.commands if f"crm {name}" not in README]
    assert missing == []


def test_every_permission_is_in_the_roles_table():
    from crm.core.security import PERMISSIONS, ROLES

    section = README.split("\n## Roles and personal data")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    for permission, roles in PERMISSIONS.items():
        row = next((line for line in rows if f"`{permission}`" in line), None)
        assert row is not None, f"README's roles table lacks {permission}"
        listed = row.split("|")[2].strip()
        expected = set(ROLES) if listed == "all roles" else set(listed.split(", "))
        assert expected == roles, f"README's roles for {permission} differ from PERMISSIONS"


def _leaf_commands(group, path=()):
    import click

    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


# Commands that act and say what they did in one sentence (or run until stopped): the only ones
# without --format.
ACTIONS_WITHOUT_FORMAT = {
    "audit search-limit",  # shows or sets one setting in one sentence
    "audit verify",  # one sentence: the chain holds, or where it breaks
    "db upgrade",
    "init",
    "demo",  # progress bar, then what it built and what to try next
    "household add",
    "household update",
    "household member add",
    "key backup",  # writes the key to a file
    "key rotate",  # progress bar
    "shell",  # the desk: runs commands typed at its prompt
    "desk",
    "server start",  # the desk server's process: one sentence each
    "server stop",
    "server status",
}


def test_every_listing_and_record_takes_the_format_option():
    """README: every command that lists or shows records takes --format table|json|csv."""
    from crm.cli import cli

    assert "takes `--format table|json|csv`" in README
    without = {
        name
        for name, command in _leaf_commands(cli)
        if not any("--format" in param.opts for param in command.params)
    }
    assert without == ACTIONS_WITHOUT_FORMAT


def _readme_commands() -> list[str]:
    """Every `crm …` code span of the README (outside code blocks too)."""
    spans = re.findall(r"`(crm [^`]+)`", README)
    return [span.replace("\\|", "|") for span in spans]


def _problems(spans: list[str]) -> list[str]:
    """What is wrong with these `crm …` spans: commands that do not exist, options that are
    not the command's (of one of them, where a span names alternatives like step|assess)."""
    import click

    from crm.cli import cli

    problems = []
    for span in spans:
        words = span.split()[1:]
        current: list[click.Command] = [cli]
        path, options = [], []
        while words:
            word = words.pop(0)
            if word in ("--as", "--db"):  # the root's options take a value
                words[:1] = []
                continue
            if word.startswith(("-", "[-")):
                options += re.findall(r"--[a-z][a-z-]*", word)
                # its value, if it has one here (`-o FILE`, `[--by project|team]`)
                if not word.endswith("]") and words and not words[0].startswith(("-", "[")):
                    words.pop(0)
                continue
            if word.isupper():  # KIND, CODE: a placeholder for one of the commands
                current = [c for c in current if not isinstance(c, click.Group)] + [
                    sub
                    for c in current
                    if isinstance(c, click.Group)
                    for sub in c.commands.values()
                ]
                continue
            groups = [c for c in current if isinstance(c, click.Group)]
            if not groups:  # a command's arguments (CODE, NO, FILE …)
                continue
            alternatives = re.split(r"[|/]", word)
            found = [g.commands[a] for g in groups for a in alternatives if a in g.commands]
            if found and len(found) < len(alternatives):
                problems.append(f"{span}: 「{word}」 names a command that does not exist")
            if found:
                current, path = found, [*path, word]
            elif word not in ("…", "..."):  # groups take no arguments
                problems.append(f"{span}: 「{word}」 is not a command of crm {' '.join(path)}")
        if not path and not options:
            problems.append(f"{span}: names no command")
        leaves = [c for c in current if not isinstance(c, click.Group)]
        known = {opt for param in cli.params for opt in (*param.opts, *param.secondary_opts)}
        for command in leaves:
            for param in command.params:
                known.update((*param.opts, *param.secondary_opts))
        for option in options:
            if leaves and option not in known:
                problems.append(f"{span}: {option} is not an option of crm {' '.join(path)}")
    return problems


def test_every_command_and_option_the_readme_names_exists():
    spans = _readme_commands()
    assert len(spans) > 100
    assert _problems(spans) == []
    # The check sees what is wrong.
    assert len(_problems(["crm ticket lst", "crm ticket list --colour red", "crm household"])) == 2
    assert _problems(["crm ticket step|asess NO"]) != []
    assert _problems(["crm --as 王经理:manager audit list --limit 5"]) == []

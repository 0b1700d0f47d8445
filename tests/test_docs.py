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

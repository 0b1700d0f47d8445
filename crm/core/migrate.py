"""Alembic, driven from code. The core and each plugin with tables ship their own migration
chain; each chain keeps its revision in its own version table (`alembic_version` for the core,
`alembic_version_<plugin>` for a plugin), so a plugin can be added, upgraded or switched off
without touching the others.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from crm.core.errors import CrmError

CORE_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True, order=True)
class Chain:
    name: str
    location: Path

    @property
    def version_table(self) -> str:
        return "alembic_version" if self.name == "core" else f"alembic_version_{self.name}"


CORE = Chain("core", CORE_MIGRATIONS)


def chains(plugin_locations: list[tuple[str, str]] | None = None) -> list[Chain]:
    """The core chain first (plugin tables refer to core tables), then the plugins' by name."""
    extra = sorted(Chain(name, Path(path)) for name, path in plugin_locations or [])
    return [CORE, *extra]


def _config(chain: Chain, connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(chain.location))
    config.attributes["version_table"] = chain.version_table
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _render_item(type_, obj, autogen_context):
    # UTCDateTime only converts values in Python; migrations need the plain column type.
    from crm.core.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    """The body of every chain's env.py: migrate on the connection crm.core.migrate supplies."""
    from alembic import context

    from crm.core.models import Base

    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `crm db upgrade`, which supplies the connection")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=config.attributes["version_table"],
        include_object=config.attributes.get("include_object"),
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def make_revision(engine: Engine, chain: Chain, message: str, rev_id: str, owns) -> None:
    """Autogenerate a revision of `chain` for the tables `owns(name)` says are the chain's
    (developers' tool: scripts/make_migration.py)."""
    from alembic import command

    def only_this_chain(obj, name, type_, _reflected, _compare_to):
        table = (
            obj.table.name
            if type_ in ("column", "index", "unique_constraint", "foreign_key_constraint")
            else name
        )
        return owns(table)

    with engine.begin() as connection:
        config = _config(chain, connection)
        config.attributes["include_object"] = only_this_chain
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


def upgrade(engine: Engine, all_chains: list[Chain]) -> dict[str, str | None]:
    """Bring every chain to its head; returns chain name -> revision now in force. A chain
    already at its head is left alone (alembic would only load its scripts to find that out)."""
    from alembic import command

    for state in states(engine, all_chains):
        if state.current == state.head:
            continue
        with engine.begin() as connection:
            command.upgrade(_config(state.chain, connection), "head")
    return {chain.name: current_revision(engine, chain) for chain in all_chains}


def current_revision(engine: Engine, chain: Chain = CORE) -> str | None:
    return states(engine, [chain])[0].current


@functools.cache
def _script(location: Path):
    """A chain's migration scripts as alembic reads them (it imports every one), once per
    process: for upgrading, and for a chain whose files `history` cannot read."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(Chain("", location)))


@dataclass(frozen=True)
class History:
    """What the schema check needs of a chain's migrations: every revision id and the head."""

    revisions: frozenset[str]
    head: str | None


# A revision file's module-level `revision = "…"` and `down_revision = …` (with or without a
# type annotation, as alembic's templates write them).
_ASSIGNMENT = re.compile(
    r"^(revision|down_revision|depends_on)\s*(?::[^=\n]*)?=\s*(.*?)\s*(?:#.*)?$", re.MULTILINE
)


@functools.cache
def history(location: Path) -> History:
    """A chain's revisions and head, read from the text of its revision files, so that the
    check every command makes does not import alembic (≈0.2 s) nor run every migration
    module. Files it cannot read plainly (a merge written over several lines, a dependency
    on another chain, several heads) are left to alembic, which then decides. A test checks
    the two agree on every chain."""
    parents: dict[str, tuple[str, ...]] = {}
    for path in sorted((location / "versions").glob("*.py")):
        if path.name.startswith(("__init__", ".#")):
            continue  # alembic skips these too
        found = {}
        for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8")):
            if name in found:
                return _alembic_history(location)
            try:
                found[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return _alembic_history(location)
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str) or found.get("depends_on") is not None:
            return _alembic_history(location)
        if revision in parents:
            return _alembic_history(location)
        down = (down,) if isinstance(down, str) else down
        if down is not None and not (
            isinstance(down, tuple | list) and all(isinstance(d, str) for d in down)
        ):
            return _alembic_history(location)
        parents[revision] = tuple(down or ())
    heads = set(parents) - {parent for downs in parents.values() for parent in downs}
    if len(heads) > 1:
        return _alembic_history(location)
    return History(frozenset(parents), next(iter(heads), None))


def _alembic_history(location: Path) -> History:
    script = _script(location)
    revisions = frozenset(rev.revision for rev in script.walk_revisions())
    return History(revisions, script.get_current_head())


def head_revision(chain: Chain = CORE) -> str | None:
    return history(chain.location).head


@dataclass(frozen=True)
class ChainState:
    chain: Chain
    current: str | None
    head: str | None
    # False when the database's revision is not in this crm's migrations: a newer crm wrote it.
    known: bool

    @property
    def behind(self) -> bool:
        return self.known and self.current != self.head


def states(
    engine: Engine, all_chains: list[Chain], tables: set[str] | None = None
) -> list[ChainState]:
    """Each chain's revision in the database beside this crm's head, in one connection,
    read with plain SQL from the version tables (`tables`: the database's tables, when the
    caller has them already)."""
    from sqlalchemy import inspect, text

    found = []
    with engine.connect() as connection:
        if tables is None:
            tables = set(inspect(connection).get_table_names())
        for chain in all_chains:
            current = None
            if chain.version_table in tables:
                rows = connection.execute(
                    text(f"SELECT version_num FROM {chain.version_table}")
                ).scalars()
                current = _single(chain, list(rows))
            known_history = history(chain.location)
            known = current is None or current in known_history.revisions
            found.append(ChainState(chain, current, known_history.head, known))
    return found


def _single(chain: Chain, revisions: list[str]) -> str | None:
    """The one revision a version table holds (crm's chains have no branches)."""
    if len(revisions) > 1:
        raise CrmError(
            f"数据库的版本表 {chain.version_table} 记有多个版本（{'、'.join(sorted(revisions))}），"
            "不是 crm 写下的：请检查数据库。"
        )
    return revisions[0] if revisions else None


def outdated(engine: Engine, all_chains: list[Chain]) -> list[tuple[Chain, str | None, str | None]]:
    """Chains whose database revision is behind their head: (chain, current, head). A revision
    this crm does not know (written by a newer crm) is not "behind": see `newer`."""
    return [(s.chain, s.current, s.head) for s in states(engine, all_chains) if s.behind]


def newer(engine: Engine, all_chains: list[Chain]) -> list[tuple[Chain, str]]:
    """Chains whose database revision this crm's migrations do not contain: the database was
    upgraded by a newer crm, and neither reading nor "upgrading" it with this one is safe."""
    return [(s.chain, s.current) for s in states(engine, all_chains) if not s.known]

"""Alembic, driven from code. The core and each plugin with tables ship their own migration
chain; each chain keeps its revision in its own version table (`alembic_version` for the core,
`alembic_version_<plugin>` for a plugin), so a plugin can be added, upgraded or switched off
without touching the others.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

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
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": chain.version_table}
        )
        return context.get_current_revision()


@functools.cache
def _script(location: Path):
    """A chain's migration scripts, read once per process: they do not change while it runs,
    and reading them is most of what checking a database's schema costs."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(Chain("", location)))


def head_revision(chain: Chain = CORE) -> str | None:
    return _script(chain.location).get_current_head()


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


def states(engine: Engine, all_chains: list[Chain]) -> list[ChainState]:
    """Each chain's revision in the database beside this crm's head, in one connection."""
    from alembic.runtime.migration import MigrationContext

    found = []
    with engine.connect() as connection:
        for chain in all_chains:
            context = MigrationContext.configure(
                connection, opts={"version_table": chain.version_table}
            )
            current = context.get_current_revision()
            script = _script(chain.location)
            known = current is None or _known(script, current)
            found.append(ChainState(chain, current, script.get_current_head(), known))
    return found


def _known(script, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        found = script.get_revision(revision)
    except CommandError:
        return False
    return found is not None and found.revision == revision  # not a mere prefix of one


def outdated(engine: Engine, all_chains: list[Chain]) -> list[tuple[Chain, str | None, str | None]]:
    """Chains whose database revision is behind their head: (chain, current, head). A revision
    this crm does not know (written by a newer crm) is not "behind": see `newer`."""
    return [(s.chain, s.current, s.head) for s in states(engine, all_chains) if s.behind]


def newer(engine: Engine, all_chains: list[Chain]) -> list[tuple[Chain, str]]:
    """Chains whose database revision this crm's migrations do not contain: the database was
    upgraded by a newer crm, and neither reading nor "upgrading" it with this one is safe."""
    return [(s.chain, s.current) for s in states(engine, all_chains) if not s.known]

"""The shipped migrations (core and plugin chains) build exactly the schema the models
describe."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import crm.plugins.analysis.models
import crm.plugins.campaigns.models
import crm.plugins.coordination.models
import crm.plugins.profitability.models
import crm.plugins.satisfaction.models
import crm.plugins.service.models  # noqa: F401
from crm.core.models import Base


def test_models_and_migrations_agree(app):
    with app.engine.connect() as connection:
        # Each plugin chain's own version table is alembic's, not the models'.
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, type_, _parent: (
                    not (name or "").startswith("alembic_version")
                )
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


OLD_JOBS = "camp_scheduler_jobs"
OLD_MODULE = "crm.plugins.campaigns.scheduler"


def _migrate(app, chain_name: str, revision: str) -> None:
    """Downgrade one chain to `revision` (what `crm db upgrade` never does; only tests)."""
    from alembic import command
    from alembic.config import Config

    chain = next(chain for chain in app.migration_chains() if chain.name == chain_name)
    with app.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(chain.location))
        config.attributes.update(version_table=chain.version_table, connection=connection)
        command.downgrade(config, revision)


def _old_jobs(app) -> dict[str, tuple[str, tuple]]:
    import pickle

    from sqlalchemy import column, select, table

    jobs = table(OLD_JOBS, column("id"), column("job_state"))
    with app.engine.connect() as connection:
        rows = connection.execute(select(jobs.c.id, jobs.c.job_state)).all()
    return {
        job_id: (state["func"], tuple(state["args"]))
        for job_id, state in ((job_id, pickle.loads(blob)) for job_id, blob in rows)
    }


def _has_table(app, name: str) -> bool:
    from sqlalchemy import inspect

    return inspect(app.engine).has_table(name)


def test_an_upgrade_carries_the_campaign_schedulers_jobs_over_to_the_core(app):
    """Before the scheduler moved to the core, the campaigns plugin kept its jobs in
    camp_scheduler_jobs; upgrading moves them, next run times and all, and drops that table
    only when nothing it does not know is left in it."""
    import datetime as dt
    import pickle

    from sqlalchemy import text

    from crm.core.db import transaction
    from crm.core.migrate import upgrade
    from crm.core.models import utcnow
    from crm.core.scheduler import list_jobs, paused_scheduler, sync_jobs
    from crm.plugins.campaigns.campaigns import create_campaign, normalise_rule

    with app.session() as session, transaction(session):
        create_campaign(session, "WEEKLY", "每周关怀", "loyalty", "短信", "{家庭}您好",
                        normalise_rule(session, "loyalty"), cron="0 9 * * 1")  # fmt: skip
    missed = (utcnow() - dt.timedelta(hours=1)).replace(microsecond=0)
    with app.session() as session, paused_scheduler(app) as store:
        sync_jobs(store, session)
        store.modify_job("campaign:WEEKLY", next_run_time=missed)  # missed while down
    before = {job["id"]: job["next_run"] for job in list_jobs(app)}
    carried = {key: before[key] for key in ("campaign:WEEKLY", "lifecycle", "sync")}
    assert carried["campaign:WEEKLY"] == missed

    try:
        _migrate(app, "campaigns", "camp0002")
        _migrate(app, "core", "0001")
        # What the campaigns plugin's scheduler had stored.
        assert not _has_table(app, "scheduler_jobs")
        assert _old_jobs(app) == {
            "campaign:WEEKLY": (f"{OLD_MODULE}:run_campaign_job", ("WEEKLY",)),
            "lifecycle": (f"{OLD_MODULE}:plan_lifecycle_job", ()),
            "sync": (f"{OLD_MODULE}:sync_job", ()),
        }
    finally:
        upgrade(app.engine, app.migration_chains())
    assert not _has_table(app, OLD_JOBS)
    # The store loads them (it drops a job whose function it cannot import) with their times.
    assert {job["id"]: job["next_run"] for job in list_jobs(app)} == carried
    with app.session() as session, paused_scheduler(app) as store:
        again = sync_jobs(store, session)
    assert "campaign:WEEKLY" in again.kept and "lifecycle" in again.kept
    assert {j["id"]: j["next_run"] for j in list_jobs(app)}["campaign:WEEKLY"] == missed

    # A row naming a function the migration does not know keeps the old table.
    unknown = {"version": 1, "id": "custom", "func": "elsewhere:job", "args": (), "kwargs": {}}
    try:
        _migrate(app, "campaigns", "camp0002")
        with app.engine.begin() as connection:
            connection.execute(
                text(f"INSERT INTO {OLD_JOBS} (id, next_run_time, job_state) VALUES (:i, :t, :s)"),
                {"i": "custom", "t": None, "s": pickle.dumps(unknown)},
            )
    finally:
        upgrade(app.engine, app.migration_chains())
    try:
        assert set(_old_jobs(app)) == {"custom"}
        assert "campaign:WEEKLY" in {job["id"] for job in list_jobs(app)}
    finally:
        with app.engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {OLD_JOBS}"))


def test_an_upgrade_gives_members_written_before_their_masked_columns(app):
    """Migration 0006 adds the masked columns; a migration has no key, so `crm init` and
    `crm db upgrade` (App.init) fill them for the members already there."""
    from sqlalchemy import select, text

    from crm.core.db import transaction
    from crm.core.models import Household, Member
    from crm.core.privacy import seal_member_fields

    with app.session() as session, transaction(session):
        household = Household(code="H1", name="李家", status="existing")
        household.members.append(
            Member(
                name="李明",
                **seal_member_fields(
                    app.vault,
                    phone="13812345678",
                    alt_phone="02188886666",
                    id_number="110105199001011234",
                ),
            )
        )
        session.add(household)
    _migrate(app, "core", "0005")
    with app.engine.connect() as connection:
        assert connection.execute(text("SELECT phone_enc FROM members")).scalar() is not None
    app.init()
    with app.session() as session:
        member = session.execute(select(Member.__table__)).mappings().one()
    assert (member["phone_masked"], member["alt_phone_masked"], member["id_number_masked"]) == (
        "138****5678",
        "021****6666",
        "110105********1234",
    )
    assert member["alt_phone_hash"] == app.vault.lookup_hash("02188886666")
    assert member["alt_phone_tail"] == "6666"  # migration 0007: 尾号 search finds it


def _chains():
    from crm.core.migrate import chains
    from crm.core.plugins import make_plugin_manager
    from crm.plugins import BUILTIN_PLUGINS

    return chains(make_plugin_manager(BUILTIN_PLUGINS).hook.migration_locations())


def test_the_heads_read_from_the_files_are_alembics_heads():
    """The schema check reads each chain's revisions and head from the text of its revision
    files rather than through alembic: they must be what alembic itself finds, on every
    chain, so adding a migration keeps the check right."""
    from crm.core.migrate import _alembic_history, history

    found = {chain.name: history(chain.location) for chain in _chains()}
    assert found == {chain.name: _alembic_history(chain.location) for chain in _chains()}
    assert all(h.head in h.revisions for h in found.values())
    assert len(found) == 7


def test_history_falls_back_to_alembic_on_files_it_cannot_read(tmp_path, monkeypatch):
    """A new head, a merge of two heads, and a revision written in a way the plain reading
    does not know: the first two are read from the text, the last is left to alembic."""
    from crm.core import migrate

    versions = tmp_path / "versions"
    versions.mkdir()
    (tmp_path / "script.py.mako").write_text("")
    (tmp_path / "env.py").write_text("")

    def write(name: str, header: str) -> None:
        (versions / f"{name}.py").write_text(f'"""{name}"""\n{header}\n', encoding="utf-8")

    write("a1", 'revision = "a1"\ndown_revision = None')
    write("a2", 'revision: str = "a2"\ndown_revision: str | None = "a1"  # the next one')
    write("b2", "revision = 'b2'\ndown_revision = 'a1'")
    write("m3", 'revision = "m3"\ndown_revision = ("a2", "b2")')
    assert migrate.history(tmp_path) == migrate.History(frozenset({"a1", "a2", "b2", "m3"}), "m3")
    assert migrate.history(tmp_path) == migrate._alembic_history(tmp_path)

    migrate.history.cache_clear()
    asked = []
    monkeypatch.setattr(migrate, "_alembic_history", lambda location: asked.append(location))
    write("m4", 'revision = "m4"\ndown_revision = (\n    "m3",\n)')
    migrate.history(tmp_path)
    assert asked == [tmp_path]
    migrate.history.cache_clear()

"""scheduler jobs move to the core

The scheduler moved from this plugin to the core, whose job store is the table scheduler_jobs
(core revision 0002; the core chain is upgraded before the plugins'). Each job kept in
camp_scheduler_jobs moves there with its next run time, so a run missed while the scheduler was
down still comes; only its function reference changes, to the core's
crm.core.scheduler:run_job(job id), which finds the job through the scheduled_jobs hook. A job
the core already has (a scheduler of the new version ran first) keeps the core's row.

camp_scheduler_jobs is dropped only when it is empty afterwards: a row naming a function this
migration does not know (nothing in this code base writes one) stays, with its table.

Revision ID: camp0003
Revises: camp0002
Create Date: 2026-12-02 17:45:00.000000
"""

import pickle

import sqlalchemy as sa
from alembic import op

revision = "camp0003"
down_revision = "camp0002"
branch_labels = None
depends_on = None

OLD_TABLE = "camp_scheduler_jobs"
OLD_MODULE = "crm.plugins.campaigns.scheduler"
CORE_FUNC = "crm.core.scheduler:run_job"
CAMPAIGN_PREFIX = "campaign:"
OLD_FUNCTIONS = ("run_campaign_job", "plan_lifecycle_job", "sync_job")


def _jobs(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Unicode(191)),
        sa.column("next_run_time", sa.Double()),
        sa.column("job_state", sa.LargeBinary()),
    )


def _create_old_table() -> None:
    op.create_table(
        OLD_TABLE,
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Double(), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camp_scheduler_jobs")),
    )
    with op.batch_alter_table(OLD_TABLE, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_camp_scheduler_jobs_next_run_time"), ["next_run_time"], unique=False
        )


def _to_core(blob: bytes) -> bytes | None:
    """The job's pickled APScheduler state calling the core's run_job, or None if it names a
    function of unknown meaning. The state is a plain dict (APScheduler 3 Job.__getstate__);
    unpickling it does not import the function it names."""
    try:
        state = pickle.loads(blob)
        module, _, function = str(state["func"]).partition(":")
    except Exception:  # noqa: BLE001  an unreadable row stays where it is
        return None
    if module != OLD_MODULE or function not in OLD_FUNCTIONS:
        return None
    state.update(func=CORE_FUNC, args=(state["id"],), kwargs={})
    return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)


def _to_campaigns(job_id: str, blob: bytes) -> bytes:
    state = pickle.loads(blob)
    if job_id.startswith(CAMPAIGN_PREFIX):
        function, args = "run_campaign_job", (job_id.removeprefix(CAMPAIGN_PREFIX),)
    else:
        function, args = {"lifecycle": "plan_lifecycle_job", "sync": "sync_job"}[job_id], ()
    state.update(func=f"{OLD_MODULE}:{function}", args=args, kwargs={})
    return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(OLD_TABLE):
        return
    old, core = _jobs(OLD_TABLE), _jobs("scheduler_jobs")
    taken = set(bind.execute(sa.select(core.c.id)).scalars())
    kept = 0
    for job_id, next_run_time, blob in bind.execute(
        sa.select(old.c.id, old.c.next_run_time, old.c.job_state)
    ).all():
        moved = _to_core(blob)
        if moved is None:
            kept += 1
            continue
        if job_id not in taken:
            bind.execute(
                sa.insert(core).values(id=job_id, next_run_time=next_run_time, job_state=moved)
            )
        bind.execute(sa.delete(old).where(old.c.id == job_id))
    if kept == 0:
        with op.batch_alter_table(OLD_TABLE, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f("ix_camp_scheduler_jobs_next_run_time"))
        op.drop_table(OLD_TABLE)


def downgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(OLD_TABLE):
        _create_old_table()
    old, core = _jobs(OLD_TABLE), _jobs("scheduler_jobs")
    ours = sa.or_(core.c.id.in_(("lifecycle", "sync")), core.c.id.startswith(CAMPAIGN_PREFIX))
    for job_id, next_run_time, blob in bind.execute(
        sa.select(core.c.id, core.c.next_run_time, core.c.job_state).where(ours)
    ).all():
        bind.execute(
            sa.insert(old).values(
                id=job_id, next_run_time=next_run_time, job_state=_to_campaigns(job_id, blob)
            )
        )
    bind.execute(sa.delete(core).where(ours))

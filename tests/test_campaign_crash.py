"""A campaign run killed halfway (SIGKILL, no clean-up) and started again resumes the same run
and never lists a household twice: the committed batches stay, the rest is added once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from crm.core.db import transaction
from crm.core.demo import build_demo
from crm.plugins.campaigns.campaigns import (
    create_campaign,
    get_campaign,
    normalise_rule,
    run_campaign,
    target_households,
)
from crm.plugins.campaigns.models import CampaignContact, CampaignRun

BATCH = 10
KILL_AFTER = 3 * BATCH
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)

# The child runs the campaign with the library and kills itself, hard, right after its third
# batch is committed: no exception handler, no finally block, no finish mark.
CHILD = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys
    from crm.core.app import App
    from crm.core.security import User
    from crm.plugins import BUILTIN_PLUGINS
    from crm.plugins.campaigns.campaigns import run_campaign

    app = App(sys.argv[1], user=User("外呼组", "manager"), builtins=BUILTIN_PLUGINS)

    def progress(done, total):
        if done >= int(sys.argv[3]):
            print(done, total, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    with app.session() as session:
        now = dt.datetime.fromisoformat(sys.argv[4])
        run_campaign(session, "CRASH", now=now, batch_size=int(sys.argv[2]), progress=progress)
    print("finished without being killed", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_run_killed_midway_resumes_without_contacting_anyone_twice(app, db_url):
    with app.session() as session, transaction(session):
        build_demo(session, households=300, seed=5, now=NOW)
        create_campaign(
            session, "CRASH", "一路同行回馈", "loyalty", "短信", "{家庭}您好",
            normalise_rule(session, "loyalty", stages=["业主", "老业主", "交房一年内"]),
        )  # fmt: skip
    with app.session() as session:
        target = target_households(session, get_campaign(session, "CRASH"), NOW).household_ids
    assert len(target) > KILL_AFTER + BATCH  # the kill really lands midway

    child = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(BATCH), str(KILL_AFTER), NOW.isoformat()],
        capture_output=True,
        text=True,
        check=False,  # the child is meant to die by SIGKILL
        env=os.environ.copy(),
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split()[0] == str(KILL_AFTER)
    with app.session() as session:
        [crashed] = session.scalars(select(CampaignRun)).all()
        committed = session.scalar(select(func.count()).select_from(CampaignContact))
    assert crashed.finished_at is None and committed == KILL_AFTER

    with app.session() as session:
        result = run_campaign(session, "CRASH", now=NOW, batch_size=BATCH)
    assert result.resumed and result.run_id == crashed.id
    assert result.added == len(target) - KILL_AFTER
    with app.session() as session:
        [finished] = session.scalars(select(CampaignRun)).all()
        per_household = session.execute(
            select(CampaignContact.household_id, func.count())
            .where(CampaignContact.run_id == finished.id)
            .group_by(CampaignContact.household_id)
        ).all()
    assert finished.finished_at is not None and finished.audience == len(target)
    assert sorted(hid for hid, _ in per_household) == target
    assert {count for _, count in per_household} == {1}

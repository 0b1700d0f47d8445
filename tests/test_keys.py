"""The personal-data key: errors are sentences, init never makes a second key, a lost pin is
refused, `crm key backup` and a crash-safe `crm key rotate`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from crm.core import keys
from crm.core.app import App
from crm.core.db import transaction
from crm.core.households import search_households
from crm.core.models import AuditEntry, Household, Member, Setting
from crm.core.privacy import seal_member_fields
from crm.core.security import Vault, decode_key, new_key, write_key_file
from crm.plugins import BUILTIN_PLUGINS
from tests.conftest import ADMIN, TEST_KEY
from tests.test_faults import one_sentence

OTHER_KEY = new_key()


@pytest.fixture
def key_file(tmp_path, monkeypatch) -> Path:
    """The test key in a key file (CRM_SECRET_KEY unset), as a real installation keeps it."""
    path = tmp_path / "keys" / "secret.key"
    write_key_file(path, TEST_KEY)
    monkeypatch.delenv("CRM_SECRET_KEY")
    monkeypatch.setenv("CRM_KEY_FILE", str(path))
    return path


def fresh_app(db_url: str) -> App:
    return App(db_url, user=ADMIN, builtins=BUILTIN_PLUGINS)


def seed(app: App, count: int = 23) -> dict[str, tuple]:
    """Households with one member each; some without an alternative phone or ID number."""
    people = {}
    with app.session() as session, transaction(session):
        vault = session.info["vault"]
        for i in range(count):
            phone = f"139{i:08d}"
            alt = f"0571-{i:07d}" if i % 3 else None
            id_number = f"11010519900101{i:04d}" if i % 2 else None
            household = Household(code=f"K{i:04d}", name=f"测试家庭{i}")
            sealed = seal_member_fields(vault, phone=phone, alt_phone=alt, id_number=id_number)
            household.members.append(Member(name=f"成员{i}", role="owner", **sealed))
            session.add(household)
            people[f"成员{i}"] = (phone, alt, id_number)
    return people


def members(db_url: str) -> dict[str, tuple]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Member.__table__)).mappings().all()
    engine.dispose()
    return {row["name"]: row for row in rows}


def assert_intact(db_url: str, vault: Vault, people: dict[str, tuple]) -> None:
    """Every member's phones and ID number open with `vault`, and their hashes are its hashes."""
    rows = members(db_url)
    assert set(rows) >= set(people)
    for name, (phone, alt, id_number) in people.items():
        row = rows[name]
        assert vault.decrypt(row["phone_enc"]) == phone
        assert vault.decrypt(row["alt_phone_enc"]) == alt
        assert vault.decrypt(row["id_number_enc"]) == id_number
        assert row["phone_hash"] == vault.lookup_hash(phone)
        assert row["id_number_hash"] == vault.lookup_hash(id_number)
        assert row["phone_tail"] == phone[-4:]


def key_in(path: Path) -> Vault:
    return Vault(decode_key(path.read_text()))


def settings(db_url: str) -> dict[str, str]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        values = dict(conn.execute(select(Setting.key, Setting.value)).all())
    engine.dispose()
    return values


def delete_pin(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM settings WHERE key = 'security.key_check'"))
    engine.dispose()


# --- key errors are sentences ------------------------------------------------------------------


def test_an_unreadable_key_file_is_a_sentence(app, key_file, run, monkeypatch):
    real = Path.read_bytes

    def refuse(path):
        if path == key_file:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    if os.geteuid() != 0:
        key_file.chmod(0o000)
    else:  # root reads any file: make the read fail as it would for anyone else
        monkeypatch.setattr(Path, "read_bytes", refuse)
    sentence = one_sentence(run("household", "list"))
    assert "无权读取密钥文件" in sentence and str(key_file) in sentence


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a key at all\n", "格式不对"),
        (b"\xff\xfe\x00garbage", "格式不对"),
        (b"", "格式不对"),
        (TEST_KEY[:20].encode(), "格式不对"),
    ],
)
def test_a_key_file_in_the_wrong_format_is_a_sentence(app, key_file, run, content, expected):
    key_file.write_bytes(content)
    sentence = one_sentence(run("household", "list"))
    assert expected in sentence and str(key_file) in sentence


def test_a_folder_or_an_open_key_file_is_a_sentence(app, key_file, run, tmp_path, monkeypatch):
    key_file.chmod(0o644)
    assert "chmod 600" in one_sentence(run("household", "list"))
    folder = tmp_path / "folder.key"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("CRM_KEY_FILE", str(folder))
    assert "是一个文件夹" in one_sentence(run("household", "list"))


def test_a_wrong_key_names_both_fingerprints(app, run, monkeypatch):
    monkeypatch.setenv("CRM_SECRET_KEY", OTHER_KEY)
    expected = Vault(decode_key(TEST_KEY)).fingerprint
    for args in (("household", "list"), ("init",), ("db", "upgrade")):
        sentence = one_sentence(run(*args))
        assert Vault(decode_key(OTHER_KEY)).fingerprint in sentence and expected in sentence


# --- init never writes a second key; a lost pin is refused -------------------------------------


@pytest.mark.parametrize("with_data", [True, False])
def test_init_never_writes_a_second_key(app, key_file, run, with_data):
    if with_data:
        seed(app, 3)
    key_file.unlink()
    sentence = one_sentence(run("init"))
    assert Vault(decode_key(TEST_KEY)).fingerprint in sentence
    assert "不会为已有数据的数据库生成新密钥" in sentence
    assert not key_file.exists()
    assert not list(key_file.parent.iterdir())
    # with the key put back, init is the ordinary upgrade
    write_key_file(key_file, TEST_KEY)
    assert run("init").exit_code == 0


def test_a_lost_pin_with_encrypted_data_is_refused(app, db_url, run, monkeypatch):
    people = seed(app, 5)
    delete_pin(db_url)
    monkeypatch.setenv("CRM_SECRET_KEY", OTHER_KEY)
    assert "没有登记密钥" in one_sentence(run("household", "list"))
    assert "解不开已有的个人信息" in one_sentence(run("init"))
    assert keys.KEY_CHECK not in settings(db_url)
    # the right key is refused too until init has checked it opens the data, then pinned
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_KEY)
    assert "crm init" in one_sentence(run("household", "list"))
    result = run("init")
    assert result.exit_code == 0, result.output
    assert settings(db_url)[keys.KEY_CHECK] == Vault(decode_key(TEST_KEY)).key_check()
    assert run("household", "list").exit_code == 0
    with app.session() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "key_pin" in actions
    assert_intact(db_url, Vault(decode_key(TEST_KEY)), people)


def test_a_lost_pin_without_data_is_pinned_again_by_init(app, db_url, run, monkeypatch):
    delete_pin(db_url)
    assert run("household", "list").exit_code == 0  # nothing encrypted: nothing to mistake
    monkeypatch.setenv("CRM_SECRET_KEY", OTHER_KEY)
    assert run("init").exit_code == 0
    assert settings(db_url)[keys.KEY_CHECK] == Vault(decode_key(OTHER_KEY)).key_check()


# --- backup ----------------------------------------------------------------------------------


def test_key_backup_writes_a_private_file_once_and_is_audited(app, key_file, run, tmp_path):
    target = tmp_path / "backup" / "crm.key"
    result = run("key", "backup", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert decode_key(target.read_text()) == decode_key(TEST_KEY)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert Vault(decode_key(TEST_KEY)).fingerprint in result.output
    target.write_text("kept\n")
    assert "不会覆盖" in one_sentence(run("key", "backup", "-o", str(target)))
    assert target.read_text() == "kept\n"
    assert "无权" in one_sentence(run("key", "backup", "-o", str(tmp_path / "x"), as_="m:manager"))
    assert not (tmp_path / "x").exists()
    (tmp_path / "plain").write_text("")  # a file where a folder should be: nothing to audit
    assert "无法创建" in one_sentence(run("key", "backup", "-o", str(tmp_path / "plain" / "k")))
    with app.session() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "key_backup")).all()
    assert len(entries) == 1 and str(target) in entries[0].detail


def test_key_backup_of_a_wrong_key_is_refused(app, run, tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_SECRET_KEY", OTHER_KEY)
    assert "不匹配" in one_sentence(run("key", "backup", "-o", str(tmp_path / "k")))
    assert not (tmp_path / "k").exists()


# --- rotation --------------------------------------------------------------------------------


def test_rotate_re_encrypts_everything_with_a_new_key(app, db_url, key_file, run):
    people = seed(app, 23)
    before = members(db_url)
    result = run("key", "rotate", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    new = key_in(key_file)
    assert decode_key(key_file.read_text()) != decode_key(TEST_KEY)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not keys.pending_key_file(key_file).exists()
    assert_intact(db_url, new, people)
    after = members(db_url)
    for name, row in after.items():  # re-encryption is not a change to the person
        assert row["updated_at"] == before[name]["updated_at"]
        assert row["phone_enc"] != before[name]["phone_enc"]
    assert settings(db_url)[keys.KEY_CHECK] == new.key_check()
    assert keys.KEY_ROTATION not in settings(db_url)
    # the new key works everywhere, look-ups included; the old one is refused
    with fresh_app(db_url).session() as session:
        found = search_households(session, phone=people["成员7"][0])
    assert [row["code"] for row in found] == ["K0007"]
    os.environ["CRM_SECRET_KEY"] = TEST_KEY
    try:
        assert "不匹配" in one_sentence(run("household", "list"))
    finally:
        del os.environ["CRM_SECRET_KEY"]
    with fresh_app(db_url).session() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert {"key_rotate_start", "key_rotate"} <= set(actions)


def test_rotate_refuses_an_environment_key_and_a_low_role(app, run, key_file, monkeypatch):
    assert "无权" in one_sentence(run("key", "rotate", as_="m:manager"))
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_KEY)
    assert "CRM_SECRET_KEY" in one_sentence(run("key", "rotate"))
    assert not keys.pending_key_file(key_file).exists()


class Crash(Exception):
    """Stands for kill -9: the rotation stops here and nothing after it runs."""


def _crash_when_the_mark_is_written(monkeypatch):
    real = keys.audit.record

    def record(session, action, *args, **kwargs):
        if action == "key_rotate_start":
            raise Crash
        return real(session, action, *args, **kwargs)

    monkeypatch.setattr(keys.audit, "record", record)


def _crash_inside_the_second_batch(monkeypatch):
    real = Vault.encrypt
    calls = []

    def encrypt(self, plain):
        calls.append(plain)
        if len(calls) == 15:  # batch size 4, three columns: the 3rd call of the second batch
            raise Crash
        return real(self, plain)

    monkeypatch.setattr(Vault, "encrypt", encrypt)


def _crash_before_the_switch(monkeypatch):
    monkeypatch.setattr(keys.Rotation, "finish", lambda self: (_ for _ in ()).throw(Crash()))


def _crash_before_the_rename(monkeypatch):
    def install(_key_file):
        raise Crash

    monkeypatch.setattr(keys, "install_new_key", install)


CRASHES = {
    "new key written, not pinned": (_crash_when_the_mark_is_written, None),
    "after the first batch": (None, 1),
    "inside a batch": (_crash_inside_the_second_batch, None),
    "after the last batch": (None, 99),
    "database switched, key file not": (_crash_before_the_rename, None),
    "before the switch": (_crash_before_the_switch, None),
}


@pytest.mark.parametrize("crash", list(CRASHES))
def test_rotation_survives_a_crash_at_every_step(app, db_url, key_file, run, monkeypatch, crash):
    people = seed(app, 10)
    patch, after_batches = CRASHES[crash]
    with monkeypatch.context() as patched:
        if patch:
            patch(patched)
        batches = []

        def progress(count):
            batches.append(count)
            if after_batches and len(batches) >= min(after_batches, 3):
                raise Crash

        with pytest.raises(Crash):
            keys.rotate(fresh_app(db_url), batch_size=4, progress=progress)

    # After the crash: the key file's key opens the data, or the commands say to resume.
    for args in (("household", "list"), ("init",)):
        result = run(*args)
        if result.exit_code != 0:
            assert "crm key rotate" in one_sentence(result)
        else:
            assert_intact(db_url, key_in(key_file), people)
    # Resuming finishes the rotation with nothing lost, under the new key.
    result = run("key", "rotate", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    new = key_in(key_file)
    assert decode_key(key_file.read_text()) != decode_key(TEST_KEY)
    assert_intact(db_url, new, people)
    assert settings(db_url)[keys.KEY_CHECK] == new.key_check()
    assert keys.KEY_ROTATION not in settings(db_url)
    assert not keys.pending_key_file(key_file).exists()
    assert run("household", "list").exit_code == 0


def test_rotation_killed_with_sigkill_resumes(app, db_url, key_file):
    """A real `kill -9` of `crm key rotate` part-way, then a resume: nothing lost."""
    people = seed(app, 150)
    env = {**os.environ, "CRM_DATABASE_URL": db_url}
    command = [
        sys.executable,
        "-c",
        "from crm.cli import main; main()",
        "--as",
        "管理员:admin",
        "key",
        "rotate",
        "--batch-size",
        "1",
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    engine = create_engine(db_url)
    killed_at = None
    deadline = time.monotonic() + 60
    try:
        while process.poll() is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                mark = conn.scalar(select(Setting.value).where(Setting.key == keys.KEY_ROTATION))
            if mark and json.loads(mark)["last_id"] >= 20:
                process.send_signal(signal.SIGKILL)
                killed_at = json.loads(mark)["last_id"]
                break
            time.sleep(0.005)
    finally:
        process.wait(timeout=30)
        engine.dispose()
    assert killed_at is not None, "the rotation ended before it could be killed"
    assert keys.KEY_ROTATION in settings(db_url)
    resumed = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    new = key_in(key_file)
    assert_intact(db_url, new, people)
    assert settings(db_url)[keys.KEY_CHECK] == new.key_check()


def test_two_rotations_at_once_lose_nothing(app, db_url, key_file):
    """Two `crm key rotate` started together: each either finishes (sharing the one new key)
    or stops with a sentence; either way one more run leaves everything under the key file."""
    from threading import Barrier, Thread

    from sqlalchemy.exc import OperationalError

    from crm.core.errors import CrmError

    people = seed(app, 40)
    barrier = Barrier(2)
    outcomes = []

    def rotate():
        barrier.wait()
        try:
            keys.rotate(fresh_app(db_url), batch_size=3)
        except (CrmError, OperationalError) as exc:
            outcomes.append(type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - anything else is the failure under test
            outcomes.append(repr(exc))
        else:
            outcomes.append("done")

    threads = [Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(outcomes) <= {"done", "CrmError", "OperationalError"}, outcomes
    assert "done" in outcomes or keys.KEY_ROTATION in settings(db_url)
    keys.rotate(fresh_app(db_url), batch_size=50)
    new = key_in(key_file)
    assert_intact(db_url, new, people)
    assert settings(db_url)[keys.KEY_CHECK] == new.key_check()

"""Staff logins on PostgreSQL: each person logs in as their own database role, a member of
one CRM group role (crm_sales, crm_agent, crm_manager, crm_analyst, crm_admin) that the
core migration 0005 creates and grants.

Authentication is PostgreSQL's own (password, certificate or peer, per pg_hba.conf); `crm`
only creates the login and puts it in its CRM role. The login running these functions needs
PostgreSQL's CREATEROLE attribute (the schema's owner usually has it).
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.errors import CrmError
from crm.core.security import ROLES, role_code

# Plain identifiers only: a login name is typed into psql, pg_hba.conf and connection URLs.
LOGIN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _require_postgresql(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        raise CrmError(
            "数据库登录只用于 PostgreSQL；内置的 SQLite 数据库是单用户的，身份用 --as 或 CRM_USER 给出。"
        )


def _check(login: str, role: str) -> str:
    """The login checked; returns the role's code (`crm.core.security.role_code`)."""
    if not LOGIN_NAME.fullmatch(login):
        raise CrmError(
            f"登录名“{login}”不可用：请用小写字母、数字和下划线，以字母或下划线开头，最长 63 个字符。"
        )
    return role_code(role)


def _execute(session: Session, statement) -> None:
    """Run a role statement built with psycopg's quoting, in the session's transaction.

    Role statements take no bind parameters, so values are quoted by psycopg itself."""
    import psycopg.errors

    raw = session.connection().connection.driver_connection
    try:
        with raw.cursor() as cursor:
            cursor.execute(statement.as_string(raw))
    except psycopg.errors.InsufficientPrivilege:
        raise CrmError(
            "当前数据库登录无权创建或授权登录：需要 PostgreSQL 的 CREATEROLE 权限"
            "（通常由运行 crm init 的数据库所有者操作）。"
        ) from None


def _exists(session: Session, login: str) -> bool:
    return bool(session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login}))


def check_new_login(session: Session, login: str, role: str) -> str:
    """Whether `create_login` would take these (the user's permission, PostgreSQL, the name,
    the role, no such login yet), without creating anything; returns the role's code. Asked
    before a password is typed."""
    audit.current_user(session).require("staff.login", "创建数据库登录")
    _require_postgresql(session)
    role = _check(login, role)
    if _exists(session, login):
        raise CrmError(f"数据库登录“{login}”已存在：改角色请用 crm staff role {login} <角色>。")
    return role


def create_login(session: Session, login: str, role: str, password: str | None = None) -> str:
    """Create the PostgreSQL login `login` in CRM role `role` (code or Chinese name); returns
    the role's code. Without a password the login authenticates the way pg_hba.conf says
    (peer or certificate); the password is never written to the audit log."""
    from psycopg import sql

    role = check_new_login(session, login, role)
    statement = sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
        sql.Identifier(login), sql.Identifier(f"crm_{role}")
    )
    if password:
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
    _execute(session, statement)
    audit.record(session, "create_login", "logins", login, {"role": [None, role]})
    return role


def set_login_role(session: Session, login: str, role: str) -> tuple[str | None, str]:
    """Put `login` in CRM role `role` (code or Chinese name) and out of any other; returns the
    role it had and the role's code."""
    from psycopg import sql

    audit.current_user(session).require("staff.login", "调整数据库登录的角色")
    _require_postgresql(session)
    role = _check(login, role)
    if not _exists(session, login):
        raise CrmError(f"找不到数据库登录“{login}”：请先用 crm staff add … --login {login} 创建。")
    previous = session.scalar(text("SELECT crm_role_of(:n)"), {"n": login})
    if previous == role:
        return previous, role
    for other in ROLES:
        if other != role and _member_of(session, login, other):
            revoke = sql.SQL("REVOKE {} FROM {}")
            _execute(session, revoke.format(sql.Identifier(f"crm_{other}"), sql.Identifier(login)))
    grant = sql.SQL("GRANT {} TO {}")
    _execute(session, grant.format(sql.Identifier(f"crm_{role}"), sql.Identifier(login)))
    audit.record(session, "set_login_role", "logins", login, {"role": [previous, role]})
    return previous, role


def _member_of(session: Session, login: str, role: str) -> bool:
    """Direct membership (pg_auth_members): what REVOKE can take back."""
    return bool(
        session.scalar(
            text(
                "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
                " JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = :g AND u.rolname = :u"
            ),
            {"g": f"crm_{role}", "u": login},
        )
    )


def list_logins(session: Session) -> list[dict]:
    """Every login in a CRM role (cluster-wide, as roles are): login name and CRM role code."""
    _require_postgresql(session)
    rows = session.execute(
        text(
            "SELECT u.rolname AS login, crm_role_of(u.rolname) AS role"
            " FROM pg_roles u WHERE u.rolcanlogin AND crm_role_of(u.rolname) IS NOT NULL"
            " AND NOT u.rolsuper ORDER BY u.rolname"
        )
    )
    return [dict(row._mapping) for row in rows]

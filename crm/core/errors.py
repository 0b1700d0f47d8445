"""One exception type for everything a user can act on."""


class CrmError(Exception):
    """A problem the user can fix, told in one sentence (Chinese first).

    The CLI turns it into that sentence on stderr and a non-zero exit; nothing else
    reaches the user as a traceback for bad input.
    """

    exit_code = 1


class PermissionDenied(CrmError):
    """The current user's role does not allow this action."""

    exit_code = 3


class NotFound(CrmError):
    """A household, project or record named by the user does not exist."""

    exit_code = 4


# SQLSTATE classes and codes -> what the user can do about them (PostgreSQL; SQLite by text).
_BUSY = "数据库正忙（其他进程正在写入或锁住了数据）：请稍后重试。"
_SCHEMA = "数据库结构与当前 crm 不一致：请运行 crm db upgrade。"
_READ_ONLY = "数据库是只读的：请检查文件或登录账号是否有写入权限。"
_CONNECT = "无法连接数据库：请检查数据库地址、服务是否在运行以及登录凭据。"
_FULL = "数据库所在磁盘已满：请腾出空间后重试。"
_SQLSTATE_HINTS = {
    "55P03": _BUSY,  # lock_not_available
    "40P01": _BUSY,  # deadlock_detected
    "40001": _BUSY,  # serialization_failure
    "57014": _BUSY,  # query_canceled (statement or lock timeout)
    "42P01": _SCHEMA,  # undefined_table
    "42703": _SCHEMA,  # undefined_column
    "25006": _READ_ONLY,  # read_only_sql_transaction
    "42501": "当前数据库账号无权执行该操作：请联系数据库管理员。",  # insufficient_privilege
    "53100": _FULL,  # disk_full
}
_SQLITE_HINTS = (
    ("database is locked", _BUSY),
    ("database table is locked", _BUSY),
    ("no such table", _SCHEMA),
    ("no such column", _SCHEMA),
    ("has no column named", _SCHEMA),
    ("readonly database", _READ_ONLY),
    ("unable to open database", "无法打开数据库文件：请检查路径与文件夹权限。"),
    ("disk is full", _FULL),
    ("not a database", "数据库文件已损坏或不是 SQLite 文件：请检查 --db 或 CRM_DATABASE_URL。"),
)


def database_message(exc: Exception) -> str | None:
    """One sentence for a database error, with the hint that fits it (None: not one).

    Only the driver's first line is shown: SQLAlchemy's own text adds the statement and its
    parameters, which may hold personal data, and connection errors never carry the password.
    """
    from sqlalchemy import exc as sa

    # Integrity and data errors are bugs to fix (or checks to add), not states to explain.
    if not isinstance(exc, (sa.OperationalError, sa.ProgrammingError, sa.InternalError)) and (
        type(exc) is not sa.DatabaseError
    ):
        return None
    orig = exc.orig
    first = (str(orig).strip().splitlines() or [""])[0] if orig is not None else ""
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _SQLSTATE_HINTS:
        hint = _SQLSTATE_HINTS[sqlstate]
    elif sqlstate and sqlstate[:2] in ("08", "28"):  # connection exception, authorisation
        hint = _CONNECT
    else:
        lowered = first.lower()
        hint = next((text for needle, text in _SQLITE_HINTS if needle in lowered), None)
        if hint is None and ("connection" in lowered or "resolve host" in lowered):
            hint = _CONNECT
        if hint is None:
            hint = "请检查数据库的状态与地址。"
    return f"数据库操作失败（{first}）：{hint}"

"""Issue 12, "All Chinese": on a small demo, every command that shows something a person reads
shows it in Chinese and in local time.

One test builds a 60-household demo (fixed seed and now), moves every kind of record through
the commands that make it (tickets through all their steps, a paid repair, a group complaint's
whole plan, work orders returned and forwarded, commitments broken and settled, warnings,
coordination and its tasks, campaigns, visits, the club, the loyalty fund, models...), checking
each command's own output as it goes, then walks every command that lists or shows something —
the click tree itself decides which: every leaf command is either walked here, run as one of
the steps, or named in SKIPPED with the reason. Each output is read as people read it: tables
cell by cell under their headers, `标题：值` lines, and the text around them; the test fails on

- an internal code shown as a value: a lower-case ASCII word with an underscore (view_personal,
  service_center) or any code of the vocabularies (every UPPER_CASE code → Chinese-label table
  in crm and its plugins, plus the team, warranty-item, group-step and job codes of the demo);
- a time in ISO form or in UTC ("2026-12-02T16:20", "+00:00"): people read local times.

What is legitimately ASCII stays: numbers, household codes, register numbers, emails, file
names, units. The few places where a code IS what the person needs are allowed explicitly,
each with its reason: ALLOWED_COLUMNS; a column headed …代码, which says it shows the code to
type; a code in brackets right after its label ("跟踪关闭（close）"), which tells staff what to
type; a command shown to try ("试试：crm ticket list --overdue"); a team's code where an audit
entry records it (TEAM_CODE_CHANGE).

JSON is for programs and keeps the codes: the walk then runs every show command and a few
other commands (JSON_CHECKED) with --format json and fails on a record in the output, at the
top level or nested in it (a ticket's events, a visit's rectifications), that holds a
vocabulary code without its label beside it (`"action": "assess", "action_label": "评估"`).

The walk reuses one App per user (the `shared_app` fixture), as `crm shell` does.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import re
import unicodedata

import click
import pytest

import crm
from crm.cli import cli

N = 60

# (command, column header or record title) -> why the column shows codes.
ALLOWED_COLUMNS = {
    ("scheduler jobs", "任务"): "the job name crm scheduler set takes",
    ("scheduler jobs", "设置项"): "the setting key the schedule is stored under",
    ("scheduler set", "任务"): "the job name crm scheduler set takes",
    ("scheduler set", "设置项"): "the setting key the schedule is stored under",
    ("profitability settings list", "设置项"): "the key crm profitability settings set takes",
    ("profitability settings set", "设置项"): "the key crm profitability settings set takes",
    ("import limits", "设置项"): "the key crm import limits takes",
    ("plugins", "插件"): "plugin names, as CRM_DISABLE_PLUGINS and the entry points name them",
    ("plugins", "钩子"): "hook names: this listing is for whoever writes or checks a plugin",
    ("db current", "部分"): "plugin names, as CRM_DISABLE_PLUGINS names them",
    ("db current", "当前版本"): "alembic revision identifiers",
    ("db current", "最新版本"): "alembic revision identifiers",
    ("audit list", "编号"): "the row's number or, for a setting, its key as the command that "
    "changes it takes (crm profitability settings set, crm import limits)",
}

# Commands that are neither walked nor run, and why.
SKIPPED = {
    "init": "creates or upgrades the schema and prints one sentence; the fixtures did it",
    "db upgrade": "creates or upgrades the schema and prints one sentence; the fixtures did it",
    "key backup": "writes the key to a file and says so in one sentence",
    "key rotate": "re-encrypts personal data and reports progress; tested in test_keys",
    "simulate": "runs months of a 3,000-household service centre: far too slow here "
    "(test_simulation covers it)",
    "scheduler run": "runs the jobs until stopped; its log lines are tested in "
    "test_scheduler_log_is_chinese_and_local",
    "coordinate watch": "the loop around `coordinate run`, which is run here",
    "shell": "runs the commands typed at its prompt, each walked here on its own (test_shell)",
    "desk": "another name of shell",
    "staff logins": "PostgreSQL logins of the server, not demo data (test_pg_roles)",
    "staff role": "PostgreSQL logins of the server, not demo data (test_pg_roles)",
    "household add": "prints one sentence; the card it makes is walked (household show)",
    "household update": "prints one sentence; the card it changes is walked",
    "household member add": "prints one sentence; the card it changes is walked",
    "import households": "reads a file; test_import covers its report",
    "import members": "reads a file; test_import covers its report",
    "import purchases": "reads a file; test_import covers its report",
    "import service": "reads a file; test_import covers its report",
    "audit search-limit": "prints one number",
    "audit verify": "prints one sentence with counts and a hash",
    "demo": "run first, its summary is checked there",
    "server start": "starts a background process; each of the three says one sentence "
    "(test_server runs them)",
    "server stop": "stops the background process (test_server)",
    "server status": "one sentence on the background process (test_server)",
}

# Commands whose JSON is checked for codes without their labels, beside every show command.
JSON_CHECKED = [
    "ticket list",
    "ticket groups",
    "ticket group overdue",
    "workorder list",
    "revisit follow-ups",
    "campaign touchpoints",
    "profitability groups",
    "coordinate log",
    "analysis classify report",
    "analysis classify suggest",
    "analysis models",
    "analysis propensity report",
    "analysis segment-runs",
]
# A row that is one named thing, a step of a group complaint's plan or a group of a report,
# gives its code as `step` or `key` and its label as `label`, as the listings of such rows do
# (ticket group overdue, satisfaction report, profitability groups).
NAMED_ROWS = ("step", "key")

IDENT = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
CJK = re.compile(r"[\u3400-\u9fff]")
ISO_OR_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\+00:00|\d{2}:\d{2}(?::\d{2})?Z\b")
RULE = re.compile(r"^-+(?:  -+)*$")
RECORD = re.compile(r"^\s*([^：\s][^：]{0,20})：\s*(.*)$")
TOKEN = re.compile(r"[A-Za-z0-9_]+")
# A command shown to try ("试试：crm ticket list --overdue") is typed as it is.
COMMAND_HINT = re.compile(r"crm(?: +--?[\w.-]+| +[^\s，。；、（）：“”]+)+")
# A code in brackets right after its Chinese label ("跟踪关闭（close）") tells staff what to type.
TYPED_CODE = re.compile(r"(?<=[\u3400-\u9fff”])（[a-z][a-z0-9_]*）")
# A team's code is an identifier people choose (crm team add CODE) and type in --team, like a
# household code: the audit entry that creates or changes a team shows it.
TEAM_CODE_CHANGE = re.compile(r"团队代码：[^；]*")
# Emails, URLs and file names are ASCII by nature.
ASCII_BY_NATURE = re.compile(r"\S+@\S+|\w+://\S+|[\w./-]+\.(?:csv|xlsx|jsonl|png|db)\b")


def _code_words() -> set[str]:
    """Every code of every vocabulary in crm and its plugins: the keys of the UPPER_CASE
    tables whose values are Chinese labels (or start with one)."""
    words = set()
    for info in pkgutil.walk_packages(crm.__path__, "crm."):
        if ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, table in vars(module).items():
            if not (name.isupper() and isinstance(table, dict)):
                continue
            for key, label in table.items():
                if isinstance(label, tuple) and label:
                    label = label[0]
                coded = isinstance(key, str) and IDENT.match(key) and isinstance(label, str)
                if coded and CJK.search(label):
                    words.add(key)
    return words


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def _cut(line: str, start: int, end: int | None) -> str:
    """The part of `line` between two terminal columns."""
    out, column = [], 0
    for ch in line:
        if column >= start and (end is None or column < end):
            out.append(ch)
        column += _width(ch)
    return "".join(out).strip()


def _pieces(output: str):
    """(where, text) as a person reads the output: each table cell with its column's header,
    each `标题：值` line with its title, and every other line as text."""
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and RULE.match(lines[i + 1]):
            starts = [m.start() for m in re.finditer(r"-+", lines[i + 1])]
            spans = list(zip(starts, [*starts[1:], None], strict=True))
            headers = [_cut(lines[i], start, end) for start, end in spans]
            i += 2
            while i < len(lines) and lines[i].strip():
                if i + 1 < len(lines) and RULE.match(lines[i + 1]):
                    break  # the next table's header
                for header, (start, end) in zip(headers, spans, strict=True):
                    yield header, _cut(lines[i], start, end)
                i += 1
            continue
        record = RECORD.match(lines[i])
        if record:
            yield record[1].strip(), record[2]
        elif lines[i].strip():
            yield "", lines[i]
        i += 1


def _problems(command: str, output: str, codes: set[str]) -> list[str]:
    found = [f"{command}: time not local: {m[0]!r}" for m in ISO_OR_UTC.finditer(output)]
    for where, text in _pieces(output):
        if (command, where) in ALLOWED_COLUMNS or where.endswith("代码"):
            continue  # a column headed …代码 shows, as it says, the code to type
        cleaned = COMMAND_HINT.sub(" ", TEAM_CODE_CHANGE.sub(" ", text))
        cleaned = ASCII_BY_NATURE.sub(" ", TYPED_CODE.sub("", cleaned))
        for token in TOKEN.findall(cleaned):
            if IDENT.match(token) and ("_" in token or token in codes):
                found.append(f"{command}: [{where}] code {token!r} in {text[:100]!r}")
    return found


def _unlabelled(value, codes: set[str], path: str = "") -> list[str]:
    """Where a record in JSON output, at the top level (a listing's rows, a show's record)
    or nested in it (a ticket's events, a decision's work orders by number), holds a code
    of `codes`, or a list of them, with no label beside it (`"status": "done",
    "status_label": "已完成"`)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            items = item if isinstance(item, list) else [item]
            coded = items and all(isinstance(x, str) for x in items) and set(items) & codes
            named = key in NAMED_ROWS and "label" in value
            if coded and not named and f"{key}_label" not in value:
                found.append(f"{path}.{key} = {item!r} without {key}_label")
            found += _unlabelled(item, codes, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            found += _unlabelled(item, codes, f"{path}[]")
    return found


def _leaves(group: click.Group, path=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


class Desk:
    """Runs commands on the demo, keeps what they printed and what they found wrong."""

    def __init__(self, run):
        self.run = run
        self.codes = _code_words()
        self.problems: list[str] = []
        self.ran: set[str] = set()

    def __call__(self, *args: str, as_: str = "测试管理员:admin") -> str:
        result = self.run(*args, as_=as_)
        line = " ".join(args)
        assert result.exit_code == 0, f"crm {line}\n{result.output}"
        command = " ".join(a for a in args[: self._depth(args)])
        self.ran.add(command)
        self.problems += _problems(command, result.output, self.codes)
        return result.output

    @staticmethod
    def _depth(args) -> int:
        group, depth = cli, 0
        while isinstance(group, click.Group) and depth < len(args):
            group = group.commands[args[depth]]
            depth += 1
        return depth

    def json(self, *args: str):
        result = self.run(*args, "--format", "json", as_="测试管理员:admin")
        assert result.exit_code == 0, f"crm {' '.join(args)}\n{result.output}"
        return json.loads(result.stdout)


def _first(rows, **match):
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            return row
    raise AssertionError(f"no row with {match} in {rows[:3]}…")


@pytest.fixture
def shared_app(monkeypatch):
    """One App per user for the whole walk, as `crm shell` keeps one: each command still goes
    through the whole click tree and its own session, without opening the database again
    (two hundred commands, each checking the schema and connecting anew, took most of the
    test's time, on PostgreSQL above all)."""
    from crm import cli as cli_module

    made = {}
    original = cli_module.State

    def shared(db, user):
        if (db, user) not in made:
            made[db, user] = original(db, user)
        return made[db, user]

    monkeypatch.setattr(cli_module, "State", shared)
    yield
    for state in made.values():
        if state._app is not None:
            state._app.dispose()


def test_every_command_reads_in_chinese_and_local_time(
    run, shared_app, fixed_now, fixed_now_text, time_machine, monkeypatch
):
    desk = Desk(run)
    # The table of `crm simulate` would not be walked here; a wide terminal keeps every column
    monkeypatch.setenv("COLUMNS", "400")
    built = run("demo", "--households", str(N), "--now", fixed_now_text)
    assert built.exit_code == 0, built.output
    desk.problems += _problems("demo", built.output, desk.codes)

    staff = desk.json("staff", "list")
    front = [s["name"] for s in staff if s["level"] == 1 and s["team"] == "工程技术部"]
    manager = next(s["name"] for s in staff if s["level"] == 3)
    supervisor = next(s["name"] for s in staff if s["level"] == 2 and s["team"] == "工程技术部")
    households = desk.json("household", "list")
    owners = [h["code"] for h in households if h["status"] == "existing"]
    home, other = owners[0], owners[1]
    project = _first(households, code=home)["project"]

    def newest(kind: str) -> str:
        tickets = desk.json("ticket", "list", "--type", kind, "--limit", "1000")
        return max(tickets, key=lambda t: t["opened_at"])["number"]

    def orders(number: str) -> list[dict]:
        return desk.json("workorder", "list", "--ticket", number)

    # an activity at noon, signed up for now and attended after the clock moves on
    desk(
        "activity", "create", "业主答谢会", "--at", "2026-12-02 12:00", "--project", project,
        "--capacity", "10", "--cost", "500",
    )  # fmt: skip
    activity = str(max(desk.json("activity", "list"), key=lambda a: a["id"])["id"])
    desk("activity", "signup", activity, home)

    # --- a complaint through every step, with options, commitments and work orders ----------
    desk("ticket", "check")
    desk(
        "ticket", "open", home, "--type", "complaint", "--channel", "phone",
        "--summary", "卧室天花板渗水，墙面发霉",
    )  # fmt: skip
    complaint = newest("complaint")
    desk("ticket", "step", complaint, "confirm", "--note", "已与业主核实")
    desk(
        "ticket", "assess", complaint, "--severity", "important", "--category", "engineering",
        "--expect", "fix_now", "--expect", "compensation", "--note", "楼上防水层破损",
    )  # fmt: skip
    desk(
        "ticket",
        "contact",
        complaint,
        "--channel",
        "visit",
        "--note",
        "业主再次来访",
        "--severity",
        "hot",
    )
    desk("ticket", "step", complaint, "investigate", "--note", "现场查看")
    desk(
        "ticket",
        "options",
        complaint,
        "--offer",
        "整体重做防水",
        "--offer",
        "局部修补并赔偿",
        "--chosen",
        "1",
    )
    desk("ticket", "choose", complaint, "2")
    desk(
        "workorder", "create", complaint, "--kind", "remedial", "--description", "修补楼上防水层",
        "--assignee", front[0],
    )  # fmt: skip
    remedial = orders(complaint)[-1]["number"]
    desk("workorder", "arrive", remedial)
    desk("workorder", "return", remedial, "--reason", "需要木工，本人不会")
    returned = orders(complaint)[-1]["number"]
    desk("workorder", "forward", returned, "--to", front[1], "--note", "请带木工工具")
    forwarded = orders(complaint)[-1]["number"]
    desk("workorder", "done", forwarded, "--result", "已修补防水层")
    desk("workorder", "done", returned, "--result", "转派的工作已完成")
    desk("workorder", "show", returned)
    desk(
        "ticket", "reply", complaint, "--what", "今天中午前重新做防水", "--due", "2026-12-02 12:00",
        "--by", manager,
    )  # fmt: skip
    time_machine.move_to(fixed_now + dt.timedelta(hours=3), tick=True)
    desk("ticket", "check")  # the promise is now broken
    desk(
        "ticket",
        "settle",
        complaint,
        "--apology",
        "非常抱歉",
        "--reason",
        "材料未到",
        "--remedy",
        "明天完成并赠送礼品",
    )
    desk(
        "ticket",
        "promise",
        complaint,
        "--what",
        "明天完成",
        "--due",
        "2026-12-05 18:00",
        "--by",
        manager,
    )
    desk("ticket", "keep", complaint)
    desk("ticket", "close", complaint, "--confirmed", "--note", "业主确认已修好")
    desk("ticket", "revisit", complaint, "--csat", "2", "--comment", "拖得太久", "--reopen")
    # a note holding a UTC instant, as older notes do, reads in local time in `ticket show`
    desk("ticket", "step", complaint, "pause", "--note", "业主出差，时限 2026-12-02T16:20:00+00:00")
    desk("ticket", "step", complaint, "resume")
    desk(
        "ticket",
        "reply",
        complaint,
        "--what",
        "再检查一遍",
        "--due",
        "2026-12-06 18:00",
        "--by",
        manager,
    )
    desk("ticket", "keep", complaint)
    desk("ticket", "close", complaint, "--confirmed")
    desk(
        "ticket", "revisit", complaint, "--csat", "4", "--nps", "8", "--aspect", "处理结果=8:7",
        "--channel", "phone",
    )  # fmt: skip
    desk(
        "ticket", "feedback", complaint, "--root-cause", "防水层施工不到位",
        "--action", "加强防水验收", "--cause", "broken_promise", "--cause", "work_error",
    )  # fmt: skip
    desk("ticket", "suggest", complaint)

    # --- an enquiry claimed by an agent ------------------------------------------------------
    desk(
        "ticket",
        "open",
        other,
        "--type",
        "enquiry",
        "--channel",
        "online",
        "--summary",
        "咨询车位续租",
    )
    enquiry = newest("enquiry")
    desk("ticket", "claim", enquiry, front[0])
    desk("ticket", "reassign", enquiry, supervisor, "--reason", "休假")
    desk("ticket", "reply", enquiry, "--note", "已答复")

    # --- a paid repair: warranty check, rate stated, fee signed, the revisit work order ------
    desk(
        "ticket",
        "open",
        home,
        "--type",
        "repair",
        "--channel",
        "phone",
        "--summary",
        "帮忙拆装衣柜",
    )
    repair = newest("repair")
    desk("repair", "check", repair, "--item", "home_service")
    desk("repair", "quote", repair, "--rate", "人工费 80 元/小时")
    desk("repair", "start", repair, "--skill", "木工")
    desk("repair", "complete", repair, "--result", "已装好", "--fee", "160", "--signed-by", "业主")
    revisit_order = _first(orders(repair), kind="revisit")["number"]
    desk("workorder", "done", revisit_order, "--result", "满意", "--csat", "5", "--nps", "9")
    desk("repair", "period", "home_service", "1")
    desk("ticket", "show", repair)
    desk("ticket", "show", complaint)

    # --- a group complaint: its whole plan, linked, split, merged, closed --------------------
    desk(
        "ticket",
        "open",
        other,
        "--type",
        "complaint",
        "--channel",
        "visit",
        "--summary",
        "小区垃圾房异味",
    )
    smell = newest("complaint")
    desk(
        "ticket", "group", "create", "--project", project, "--topic", "垃圾房异味影响居住",
        "--phase", "latent", "--ticket", complaint,
    )  # fmt: skip
    groups = desk.json("ticket", "groups")
    group = max(groups, key=lambda g: g["number"])["number"]
    desk("ticket", "group", "link", group, smell)
    desk("ticket", "group", "unlink", group, smell, "--note", "不是同一问题")
    desk("ticket", "group", "link", group, smell)
    desk("ticket", "group", "phase", group, "emerging", "--note", "业主在群里联名")
    desk("ticket", "group", "lead", group, manager)
    desk("ticket", "group", "member", group, supervisor)
    desk("ticket", "group", "split", group, smell, "--topic", "垃圾房清运")
    second = max(desk.json("ticket", "groups"), key=lambda g: g["number"])["number"]
    desk("ticket", "group", "merge", group, second)
    for step in desk.json("ticket", "group", "show", group)["plan"]:
        desk("ticket", "group", "step", group, step["step"], "--note", "已完成")
    desk("ticket", "group", "show", group)
    desk("ticket", "group", "close", group, "--result", "已更换垃圾房并加强清运")

    # --- teams, staff, SLA -----------------------------------------------------------------
    desk(
        "team",
        "add",
        "greening",
        "--name",
        "绿化组",
        "--kind",
        "vendor",
        "--handles",
        "landscaping",
    )
    desk(
        "staff",
        "add",
        "绿化员甲",
        "--team",
        "greening",
        "--title",
        "绿化员",
        "--level",
        "1",
        "--skills",
        "修剪",
    )
    desk("staff", "project-manager", project, manager)
    desk("staff", "project-manager", project)
    desk("sla", "set", "complaint", "general", "--response", "15", "--resolve", "45")

    # --- club, activities, the loyalty fund ------------------------------------------------------
    member = _first(households, member_tier="none", status="existing")["code"]
    desk("club", "enrol", member, "--tier", "silver", "--note", "社区活动入会")
    desk("club", "tier", member, "gold", "--note", "年度升级")
    desk("club", "list", "--household", member)
    desk("activity", "attend", activity, home)
    desk("fund", "allocate", project, "20000", "--note", "年度利润拨付")
    desk("fund", "contribute", home, "300", "--note", "业主出资")
    desk("fund", "spend", "--kind", "activity", "--activity", activity)
    desk("fund", "spend", "200", "--kind", "gift", "--household", home, "--note", "节日礼品")

    # --- satisfaction, coordination and its tasks, improvement plans --------------------------
    desk(
        "survey", "record", home, "--kind", "periodic", "--csat", "2", "--nps", "3",
        "--aspect", "物业服务=8:4", "--comment", "物业响应慢", "--category", "服务", "--channel", "电话",
    )  # fmt: skip
    desk("satisfaction", "warnings", "--detect")
    feedback = desk.json("satisfaction", "warnings")
    desk("profitability", "assess", str(feedback[0]["id"]))
    desk("coordinate", "run")
    tasks = desk.json("task", "list")
    task = tasks[0]["number"]
    desk("task", "show", task)
    desk("task", "done", task, "--answer", "业主表示满意", "--accepted", "--cost", "300")
    desk("coordinate", "run")
    desk(
        "improvement",
        "add",
        "--what",
        "垃圾房每日清运两次",
        "--owner",
        manager,
        "--due",
        "2026-12-31",
        "--category",
        "服务",
    )
    improvement = desk.json("improvement", "list")[0]["number"]
    desk("improvement", "done", improvement, "--outcome", "已执行，异味投诉减少")

    # --- profitability and analysis ---------------------------------------------------------
    desk("profitability", "settings", "set", "profitability.discount_rate", "0.07")
    desk(
        "profitability",
        "settings",
        "set",
        "profitability.plans.loyalty_gift.team",
        "customer_service",
    )
    desk("profitability", "fit")
    desk("profitability", "clv", "--household", home)
    desk("analysis", "segments", "--k", "3")
    desk("analysis", "segments", "--k", "4")
    runs = desk.json("analysis", "segment-runs")
    desk("analysis", "segment-compare", str(runs[-1]["id"]), str(runs[0]["id"]))
    desk("analysis", "classify", "train")
    # A propensity model wants 100 buyers to be worth trusting; this demo has fewer, and what is
    # tested here is how the model's report reads, not how good the model is.
    from crm.plugins.analysis import propensity

    monkeypatch.setattr(propensity, "MIN_HOUSEHOLDS", 20)
    desk("analysis", "propensity", "train", "--target", "buy_again")
    desk("analysis", "propensity", "score", "--target", "buy_again")

    # --- campaigns and the lifecycle, the four-year visits -------------------------------------
    desk(
        "campaign", "create", "WINTER", "--name", "冬季老带新", "--kind", "referral",
        "--channel", "电话", "--template", "{业主}您好，{活动}邀请您推荐亲友", "--every", "7d",
    )  # fmt: skip
    desk("campaign", "run", "WINTER")
    run_id = str(desk.json("campaign", "report", "WINTER")[0]["run"])
    desk("campaign", "assign", run_id, front[0], front[1])
    contact = desk.json("campaign", "contacts", run_id)[0]["household"]
    desk("campaign", "contact", run_id, contact, "--outcome", "有意向", "--note", "下周带朋友看房")
    desk("campaign", "pause", "WINTER")
    desk("campaign", "pause", "WINTER", "--resume")
    desk("campaign", "plan-touchpoints", "--days", "90")
    touchpoints = desk.json("campaign", "touchpoints", "--due-within", "90")
    desk(
        "campaign",
        "touchpoint-done",
        str(touchpoints[0]["id"]),
        "--outcome",
        "已接通",
        "--note",
        "问候",
    )
    month, due = next(
        (m, rows)
        for m in ("2026-12", "2027-01", "2027-02", "2027-03", "2027-04", "2027-05", "2027-06")
        if (rows := desk.json("revisit", "due", "--month", m))
    )
    visited = due[0]["household"]
    desk(
        "revisit",
        "appoint",
        visited,
        "--month",
        month,
        "--at",
        "2026-12-10 10:00",
        "--contact",
        "业主本人",
    )
    desk(
        "revisit", "record", visited, "--month", month, "--date", "2026-12-02", "--visitor", "走访组",
        "--opinion", "建议：增加儿童游乐设施", "--opinion", "表扬：保安很负责", "--satisfaction", "3",
        "--issue", "楼道灯不亮", "--owner", supervisor, "--due", "2026-12-20",
    )  # fmt: skip
    rectification = desk.json("revisit", "show", visited)[0]["rectifications"][0]["id"]
    desk(
        "revisit", "rectify", str(rectification), "--measures", "已更换灯泡", "--date", "2026-12-02"
    )

    # --- the scheduler and settings --------------------------------------------------------------
    desk("scheduler", "sync")
    desk("scheduler", "set", "sla_check", "10m")
    desk("import", "limits", "import.xlsx_max_rows", "300000")

    # --- every command that lists or shows, with every grouping ---------------------------------
    reads = {
        "activity list": [()],
        "activity show": [(activity,)],
        "analysis chains": [()],
        "analysis classify report": [()],
        "analysis classify suggest": [("地下车库积水，车辆受损",)],
        "analysis hotspots": [("--grain", "month"), ("--grain", "week")],
        "analysis models": [()],
        "analysis propensity report": [("--target", "buy_again")],
        "analysis referrals": [("--by", by) for by in ("project", "year", "quarter")],
        "analysis referrers": [()],
        "analysis segment-runs": [()],
        "analysis segment-show": [()],
        "audit alerts": [()],
        "audit list": [("--limit", "2000")],
        "campaign contacts": [(run_id,)],
        "campaign list": [()],
        "campaign report": [("WINTER",)],
        "campaign show": [("WINTER",)],
        "campaign touchpoints": [("--all",)],
        "club list": [(), ("--household", member)],
        "coordinate log": [()],
        "db current": [()],
        "export households": [()],
        "export members": [()],
        "export purchases": [()],
        "export service": [()],
        "fund balance": [("--by", "project"), ("--by", "household")],
        "fund ledger": [()],
        "household list": [()],
        "household search": [(home,)],
        "household show": [(home,), (other,), (visited,)],
        "import limits": [()],
        "improvement list": [()],
        "plugins": [()],
        "profitability clv": [()],
        "profitability groups": [("--by", by) for by in ("project", "segment", "stage")],
        "profitability settings list": [()],
        "repair items": [()],
        "revisit appointments": [("--month", month)],
        "revisit due": [("--month", month)],
        "revisit follow-ups": [()],
        "revisit report": [("--month", month)],
        "revisit show": [(visited,)],
        "satisfaction report": [
            ("--by", by) for by in ("project", "team", "category", "month", "cause")
        ],
        "satisfaction warnings": [()],
        "scheduler jobs": [()],
        "sla list": [()],
        "staff list": [()],
        "survey list": [()],
        "task list": [()],
        "task show": [(task,)],
        "team list": [()],
        "ticket group overdue": [()],
        "ticket group show": [(group,), (second,)],
        "ticket groups": [()],
        "ticket list": [()],
        "ticket register": [("--limit", "1000")],
        "ticket show": [(complaint,), (repair,), (enquiry,), (smell,)],
        "workorder list": [(), ("--tasks",)],
        "workorder show": [(remedial,), (forwarded,), (task,)],
    }
    for command, variants in reads.items():
        for extra in variants:
            desk(*command.split(), *extra)

    # Every `--by` grouping of a listing is walked.
    leaves = dict(_leaves(cli))
    for command, variants in reads.items():
        by = [p for p in leaves[command].params if p.name in ("by", "grain")]
        for param in by:
            walked = {
                extra[extra.index(param.opts[0]) + 1]
                for extra in variants
                if param.opts[0] in extra
            }
            assert walked == set(param.type.choices), (command, walked)
    # Every command was walked, run as a step, or is skipped with its reason.
    unvisited = set(leaves) - desk.ran - set(SKIPPED)
    assert not unvisited, f"commands neither walked nor skipped: {sorted(unvisited)}"
    # JSON keeps the codes, each with its label beside it, in every record and in the records
    # nested in it (a ticket's events and work orders): every show command and a few others.
    shows = {command for command in leaves if command.split()[-1].endswith("show")}
    assert shows <= set(reads), f"show commands not walked: {sorted(shows - set(reads))}"
    for command in sorted(shows) + JSON_CHECKED:
        for extra in reads[command]:
            output = desk.json(*command.split(), *extra)
            desk.problems += [
                f"{command} --format json: {gap}" for gap in _unlabelled(output, desk.codes)
            ]
    assert not desk.problems, "\n".join(dict.fromkeys(desk.problems))


def test_an_iso_time_written_into_text_reads_in_local_time(monkeypatch):
    # notes written before times were formatted, or stored JSON, hold instants in ISO form
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    from crm.core.render import cell_text

    note = "派工单 TS20261202-0001-01（补救措施）→ 客服中心：张三，时限 2026-12-02T16:20:00+00:00"
    assert cell_text(note).endswith("时限 2026-12-03 00:20")
    assert cell_text("完成于 2026-12-02T16:20:05.123+00:00。") == "完成于 2026-12-03 00:20。"
    # a time without an offset is no instant: left as written; several values read on one line
    assert cell_text("2026-12-02T16:20 开会") == "2026-12-02T16:20 开会"
    assert cell_text(["承诺未兑现", "工作失误或服务缺陷"]) == "承诺未兑现、工作失误或服务缺陷"
    assert cell_text([]) == ""

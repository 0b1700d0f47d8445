"""Controlled vocabularies: stored code -> Chinese label.

Import files and CLI options accept either the code or the Chinese label (and a few common
synonyms); the database always stores the code, so reports and plugins compare codes.
"""

HOUSEHOLD_STATUS = {"prospective": "准客户", "existing": "业主"}
MEMBER_ROLES = {"owner": "业主", "co_owner": "共有人", "family": "家庭成员", "tenant": "租户"}
INCOME_BANDS = {
    "lt100k": "10万以下",
    "100k_300k": "10-30万",
    "300k_500k": "30-50万",
    "500k_1m": "50-100万",
    "gt1m": "100万以上",
}
HOUSING = {
    "renting": "租住",
    "with_family": "与家人同住",
    "owns_one": "自有一套",
    "owns_several": "自有多套",
}
EDUCATION = {
    "below_high_school": "高中以下",
    "high_school": "高中/中专",
    "college": "大专",
    "bachelor": "本科",
    "postgraduate": "研究生及以上",
}
MEMBER_TIERS = {
    "none": "非会员",
    "standard": "普通会员",
    "silver": "银卡",
    "gold": "金卡",
    "platinum": "白金卡",
}
PURCHASE_CHANNELS = {
    "walk_in": "自然到访",
    "referral": "老带新",
    "agency": "中介分销",
    "online": "线上",
    "event": "推介活动",
    "other": "其他",
}
SERVICE_KINDS = {
    "complaint": "投诉",
    "suggestion": "建议",
    "enquiry": "咨询",
    "title_certificate": "权证",
    "move_in": "入伙",
    "property_service": "物业服务",
    "repair": "维修",
    "visit": "走访",
}
SERVICE_CHANNELS = {
    "phone": "电话",
    "visit": "来访",
    "letter": "信函",
    "fax": "传真",
    "online": "网络",
}
SERVICE_STATUS = {"open": "处理中", "closed": "已关闭"}
# What a complaint is about (DOMAIN: engineering, design, sales management, service): service
# handling assesses it, satisfaction monitoring groups surveys by it.
COMPLAINT_CATEGORIES = {
    "engineering": "工程",
    "design": "设计",
    "sales_management": "销售管理",
    "service": "服务",
}
# The kinds of team that handle service work (DOMAIN.md: security, cleaning, technical,
# customer service, outsourced vendors); plans and dispatch both name teams by kind.
TEAM_KINDS = {
    "security": "安全",
    "cleaning": "保洁",
    "technical": "技术",
    "customer_service": "客服",
    "vendor": "外包方",
}

# Words people type in legacy files that mean the same code.
SYNONYMS = {
    "准业主": "prospective",
    "潜在客户": "prospective",
    "意向客户": "prospective",
    "已购": "existing",
    "老业主": "existing",
    "户主": "owner",
    "产权人": "owner",
    "共同产权人": "co_owner",
    "家属": "family",
    "租客": "tenant",
    "承租人": "tenant",
    "研究生": "postgraduate",
    "硕士": "postgraduate",
    "博士": "postgraduate",
    "高中": "high_school",
    "中专": "high_school",
    "会员": "standard",
    "金卡会员": "gold",
    "银卡会员": "silver",
    "中介": "agency",
    "分销": "agency",
    "推荐": "referral",
    "老带新推荐": "referral",
    "到访": "walk_in",
    "网络": "online",
    "来电": "phone",
    "上门": "visit",
    "来信": "letter",
    "交房": "move_in",
    "报修": "repair",
    "回访": "visit",
}


def label(vocabulary: dict[str, str], code: str | None) -> str:
    """The Chinese label for a stored code (the code itself when unknown, empty for None)."""
    if code is None:
        return ""
    return vocabulary.get(code, code)


def lookup_table(vocabulary: dict[str, str]) -> dict[str, str]:
    """Every spelling accepted on input -> code, for one vocabulary."""
    table = {code: code for code in vocabulary}
    table.update({code.lower(): code for code in vocabulary})
    table.update({zh: code for code, zh in vocabulary.items()})
    table.update({word: code for word, code in SYNONYMS.items() if code in vocabulary})
    return table


def code_of(vocabulary: dict[str, str], text: str, what: str) -> str:
    """The stored code for a code, Chinese label or synonym typed by a person; otherwise a
    CrmError naming `what` and listing the choices."""
    from crm.core.errors import CrmError
    from crm.core.identity import halfwidth

    table = lookup_table(vocabulary)
    cleaned = halfwidth(text).strip()
    code = table.get(cleaned) or table.get(cleaned.lower())
    if code is None:
        choices = "、".join(f"{code}（{zh}）" for code, zh in vocabulary.items())
        raise CrmError(f"不认识的{what}“{text}”：可选 {choices}。")
    return code


# Why a customer complained, recorded at a complaint's feedback step (信息反馈, several may
# apply), so reports show why people complain and not only what about. The first seven are the
# reasons a complaint breaks out; the last five the sources of dissatisfaction behind them.
COMPLAINT_CAUSES = {
    "expectation_unmet": "期望未满足",
    "old_grievance": "积怨爆发",
    "not_heeded": "不闹不被重视",
    "broken_promise": "承诺未兑现",
    "rude_staff": "态度冷漠粗鲁",
    "mixed_messages": "员工说法不一",
    "unprofessional": "处理不专业",
    "product_service": "产品与服务本身",
    "work_error": "工作失误或服务缺陷",
    "high_expectation": "预期过高与现实落差",
    "high_price": "房价高、关乎日常生活",
    "informed_customer": "客户专业、信息灵通",
}

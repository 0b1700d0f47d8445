"""Satisfaction monitoring (客户满意度监测与反馈): surveys, satisfaction = experience − expectation,
KPIs and early warning. Its hooks arrive with the after-sales issue."""

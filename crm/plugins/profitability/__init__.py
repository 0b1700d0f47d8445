"""Profitability assessment (客户盈利能力评估): lifetime value against the cost of keeping each
household and group, and the assessment of plans. Its hooks arrive with the value-chain issue."""

"""Coordination and dispatch (协调控制): the orchestrator that chains feedback -> assessment ->
plan through hooks only. Its hooks arrive with the value-chain issue."""

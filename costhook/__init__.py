"""costhook: exact per-call cost tracking and inline budgets for AI coding agents."""

__version__ = "0.1.0"

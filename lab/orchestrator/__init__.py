"""Runs suites on benches: work items, executors, scheduling, progress, recovery."""

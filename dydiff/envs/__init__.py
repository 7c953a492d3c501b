"""Environments: the task registry, termination functions, maze helpers and evaluation."""

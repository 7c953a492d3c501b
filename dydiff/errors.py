"""Errors that name their source, so a user sees at once which file or dataset is wrong."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset could not be loaded or failed validation.

    The message always starts with the source (a path, a Minari id or a built-in name).
    """

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"[{source}] {problem}")

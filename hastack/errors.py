"""The one exception hierarchy of hastack.

Expected failures (bad input, a missing package, a lab that cannot start) are HastackError
subclasses: the CLI prints them on one line and exits 2. Anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


class HastackError(Exception):
    """An expected failure, reported to the user in one line (or one line per problem)."""

    exit_code = 2

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a user's file, with its place."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{place}:{key} {self.message}"


class CloudFileError(HastackError):
    """cloud.yaml is malformed or invalid; carries every problem found, each with its line."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class CatalogError(HastackError):
    """The bundled catalog data is inconsistent (a packaging bug, caught at load)."""


class RenderError(HastackError):
    """Rendering refused or failed (e.g. the cloud has check errors and --force was not given)."""


class LabError(HastackError):
    """The lab could not be built, queried or torn down."""


class ImportFileError(CloudFileError):
    """A file of an existing cloud (`hastack import`) cannot be read or parsed; each problem
    names the file and line."""


class ReportError(HastackError):
    """A results directory, or a file beside it (e.g. a --rates file), cannot be reported on;
    a file's problems each carry their line."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []

    @classmethod
    def at(cls, problems: list[Problem]) -> ReportError:
        return cls("\n".join(str(p) for p in problems), problems)

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems] or [str(self)]

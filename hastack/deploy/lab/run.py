"""Running programs for the lab: on the host, or inside a node's namespaces with nsenter.

Arguments are always argv lists (never a shell string); a failure becomes a LabError carrying
the command and the tail of its error output.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from hastack.errors import LabError

NSENTER_ALL = ("-p", "-n", "-m", "-u", "-i")


def nsenter(pid: int, argv: Sequence[str], namespaces: Sequence[str] = NSENTER_ALL) -> list[str]:
    return ["nsenter", "-t", str(pid), *namespaces, "--", *argv]


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        # cwd "/": commands must not litter the caller's directory (a failing rabbitmqctl
        # writes erl_crash.dump into its working directory).
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                input=input, check=False, cwd="/")
    except subprocess.TimeoutExpired:
        raise LabError(f"'{shlex.join(argv)}' did not finish within {timeout:g} s") from None
    except FileNotFoundError:
        raise LabError(f"'{argv[0]}' is not installed: run scripts/setup.sh") from None
    if check and result.returncode != 0:
        raise LabError(f"'{_short(argv)}' failed ({result.returncode}): {tail(result)}")
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 3) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(text[-lines:]) or "no output"


def _short(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) < 200 else text[:200] + "..."

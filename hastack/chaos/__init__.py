"""Stage 6: chaos — break the running cloud on purpose and record what its clients saw.

    workloads (real clients, one process each) ──> timeline (JSONL, one event a line)
    faults / samplers (the orchestrator)        ──┘            │
                                                     measure (pure) ──> report (PNG, tables)

The timeline is the evidence: every request, fault verb, VIP-holder sample and check-phase
observation is an event with a wall-clock-aligned timestamp. `measure` derives every number
from the timeline alone, so a run can be re-analysed later from its files.

This package stays light to import (no matplotlib, no pydantic): the workloads run inside the
lab's client node with only the standard library and their client library.
"""

from __future__ import annotations

from hastack.errors import HastackError


class ChaosError(HastackError):
    """A chaos run cannot go on: bad workload arguments, an unreadable timeline, a workload
    that cannot even set itself up (wrong credentials, unknown host)."""

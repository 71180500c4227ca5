#!/usr/bin/env python3
"""Prints the CPU time (user + system, in milliseconds) used so far by each named process and its
children, and their threads' context switches (voluntary and not), as one JSON object:
bench/cpu.py sim=PID gateway=PID -> {"sim": ms, "sim_switches": n, "gateway": ms, ...}.

bench/run.sh samples it before and after every run, so the report can show the CPU each target
spends per request and how often its threads were switched out per request (each a sleep and a
wake-up; nginx's workers are children of its master)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime in ticks) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[11]) + int(fields[12])


def switches(pid: int) -> int:
    """Context switches of every thread of a live process so far."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    total += int(line.split(":", 1)[1])
        except (OSError, ValueError):
            pass
    return total


def tree(root: int) -> tuple[float, int]:
    """CPU milliseconds and context switches of `root` and its descendants."""
    ticks = 0
    switched = 0
    children: dict[int, list[int]] = {}
    own: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            s = stat(int(entry.name))
            if s:
                children.setdefault(s[0], []).append(int(entry.name))
                own[int(entry.name)] = s[1]
    todo = [root]
    while todo:
        pid = todo.pop()
        ticks += own.get(pid, 0)
        switched += switches(pid)
        todo.extend(children.get(pid, []))
    return ticks * 1000 / TICKS, switched


def main() -> None:
    out = {}
    for arg in sys.argv[1:]:
        name, pid = arg.split("=", 1)
        out[name], out[f"{name}_switches"] = tree(int(pid))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

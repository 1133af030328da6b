"""Resident memory of this process and the processes it started.

Resident memory of this process and every process it started (on a local Ray instance that
includes the raylet and the client actors). Read from /proc: Linux only, None elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PROC = Path("/proc")


def _children(pid: int) -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4; the name in () may contain spaces
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_mb(pid: int | None = None) -> float | None:
    """RSS of ``pid`` (default: this process) plus all its descendants, in MiB; None without /proc."""
    if not (PROC / "self" / "statm").is_file():
        return None
    root = os.getpid() if pid is None else pid
    tree, todo, total = _children(root), [root], 0
    while todo:
        p = todo.pop()
        total += _rss_bytes(p)
        todo.extend(tree.get(p, []))
    return total / 2**20

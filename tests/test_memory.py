"""Process-tree memory from /proc: a child's memory is counted with its parent's."""

import subprocess
import sys
import time

import pytest

from fl_sim.memory import PROC, tree_rss_mb


@pytest.mark.skipif(not (PROC / "self" / "statm").is_file(), reason="needs Linux /proc")
def test_tree_rss_counts_children():
    alone = tree_rss_mb()
    # a child that holds ~200 MiB
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(200 * 2**20); import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while (tree_rss_mb() or 0) - alone < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tree_rss_mb() - alone > 150
        assert tree_rss_mb(child.pid) > 190
    finally:
        child.kill()
        child.wait()

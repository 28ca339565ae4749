"""Thread settings of the PyTorch peers, applied before torch (libgomp, OpenBLAS) is loaded.

Debian's torch runs its elementwise ops on an OpenMP pool and its GEMMs on OpenBLAS's own pthread pool. With OpenMP's
default active (spinning) wait policy the idle OpenMP workers steal the cores OpenBLAS needs, which on a 2-core box
roughly doubles the step time; OMP_WAIT_POLICY=PASSIVE avoids that. OpenBLAS's pool is sized to --threads. Both are
only defaults: the environment wins.
"""

from __future__ import annotations

import os
from typing import List


def preconfigure_threads(argv: List[str]) -> None:
    """Reads --threads N (default 2) from argv and sets the environment torch reads when it loads."""
    threads = 2
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif a.startswith("--threads="):
            threads = int(a.split("=", 1)[1])
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))

"""The command line of the case oracles: `script IN.json OUT.json` maps each case of IN to one result in OUT."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, List


def run(argv: List[str], solve: Callable[[Any], Any]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} IN.json OUT.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        cases = json.load(f)
    with open(argv[2], "w") as f:
        json.dump([solve(case) for case in cases], f)
    return 0

"""Run one sweep member in this process: ``python -m rl4rec.experiments.worker SPEC.json``.

The spec holds the task name and the full config as a mapping; local sweeps start one such
process per run, so a crash or a kill of one run never touches the others.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any


def run_spec(spec: dict[str, Any]) -> Any:
    from rl4rec.config import from_dict
    from rl4rec.registry import get_task

    cfg_cls, train = get_task(spec["task"])
    return train(from_dict(cfg_cls, spec["config"]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    run_spec(json.loads(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

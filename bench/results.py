"""Where every benchmark leaves its figures: one JSON file per run (bench/results/ by default)."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(path: str | Path, results: dict) -> Path:
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    return output

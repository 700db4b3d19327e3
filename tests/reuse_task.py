"""A task function both orchestrators run, so that reuse can cross them.

Every real run appends a line to ``runs.log`` in the project root: a reused attempt leaves
no line.
"""

from __future__ import annotations

from cmf_orchestrate import current_run


def tally(source: str, target: str, scale: int = 1) -> dict[str, int]:
    """Count the words of ``source``, write them upper-cased to ``target``, return the count."""
    root = current_run().settings.project_root
    with (root / "runs.log").open("a") as log:
        log.write(f"{source} -> {target} x{scale}\n")
    words = (root / source).read_text().split()
    out = root / target
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(" ".join(w.upper() for w in words) * scale)
    return {"words": len(words) * scale}


def tally_v2(source: str, target: str, scale: int = 1) -> dict[str, int]:
    """The same task with changed code."""
    root = current_run().settings.project_root
    with (root / "runs.log").open("a") as log:
        log.write(f"v2 {source} -> {target} x{scale}\n")
    words = (root / source).read_text().split()
    out = root / target
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(" ".join(w.upper() for w in words) * scale)
    return {"words": len(words) * scale}


def runs(root: object) -> int:
    """How many times the task body really ran in a project root."""
    from pathlib import Path

    log = Path(str(root)) / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0

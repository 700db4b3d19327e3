"""Git facts read from the ``.git`` directory itself, without spawning ``git``."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from cmf_orchestrate.versioning import find_git_dir


@dataclass(frozen=True)
class GitInfo:
    """Repository URL (origin, else the work tree path) and the commit checked out."""

    repo: str
    commit: str


def git_info(start: Path) -> GitInfo:
    """What git would say of the work tree containing ``start`` (empty strings outside one)."""
    git_dir = find_git_dir(Path(start).resolve())
    if git_dir is None:
        return GitInfo("", "")
    if git_dir.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = git_dir.read_text().strip()
        if text.startswith("gitdir:"):
            git_dir = (git_dir.parent / text.split(":", 1)[1].strip()).resolve()
    return GitInfo(_origin(git_dir) or str(git_dir.parent), _head(git_dir))


def _common_dir(git_dir: Path) -> Path:
    common = git_dir / "commondir"
    if common.is_file():
        return (git_dir / common.read_text().strip()).resolve()
    return git_dir


def _head(git_dir: Path) -> str:
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return ""
    if not head.startswith("ref:"):
        return head
    ref = head.split(":", 1)[1].strip()
    for base in (git_dir, _common_dir(git_dir)):
        try:
            return (base / ref).read_text().strip()
        except OSError:
            pass
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref) and not line.startswith(("#", "^")):
                    return line.split(" ", 1)[0]
    return ""  # an unborn branch: no commit yet


def _origin(git_dir: Path) -> str:
    config = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        config.read(_common_dir(git_dir) / "config")
    except configparser.Error:
        return ""
    section = 'remote "origin"'
    return config.get(section, "url", fallback="") if config.has_section(section) else ""

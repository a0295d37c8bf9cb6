"""Guarding run folders: what counts as one, what --overwrite may remove, and a lock so that one
process at a time trains in a folder.

A folder is a vaekit run when its config.json carries vaekit's format marker ("format":
"vaekit-run/N"); a config.json of anybody else's does not make a folder ours. Overwriting
removes only the files and folders vaekit writes into a run (by name), never anything a user put
beside them; a folder that is not a run is refused whole."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from ..config import READABLE_FORMATS
from ..errors import VaekitError
from . import layout


def is_vaekit_run(path: Path) -> bool:
    """Whether `path` holds a config.json that vaekit wrote (by its format marker)."""
    try:
        content = json.loads((Path(path) / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(content, dict) and content.get("format") in READABLE_FORMATS


def _is_our_temp(name: str, own: set[str]) -> bool:
    """A temporary file atomic_write left behind when killed: ".NAME.<random>.tmp"."""
    return name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{o}.") for o in own)


def clear_run(path: Path) -> None:
    """Remove what vaekit wrote into the run folder `path` (layout.py's names, their leftover
    temporaries, and the same inside its priors/, background/, tensorboard/ and cache/ folders);
    folders left empty go. Anything else stays where it is."""
    for entry in list(Path(path).iterdir()):
        name = entry.name
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            continue  # never follow a link out of the folder, never touch devices or pipes
        if entry.is_file() and (name in layout.OWN_FILES or _is_our_temp(name, layout.OWN_FILES)):
            entry.unlink()
        elif entry.is_dir() and name in (
            layout.BACKGROUND_DIR,
            layout.PRIOR_DIR,
            layout.TENSORBOARD_DIR,
            layout.CACHE_DIR,
        ):
            _clear_folder(entry)


def _clear_folder(folder: Path) -> None:
    name = folder.name
    if name == layout.BACKGROUND_DIR or (name == layout.STAGE_TWO_DIR and folder.parent.name == layout.PRIOR_DIR):
        if is_vaekit_run(folder):
            clear_run(folder)
    else:
        for entry in list(folder.iterdir()):
            if entry.is_symlink():
                continue
            if entry.is_dir() and name == layout.PRIOR_DIR and entry.name == layout.STAGE_TWO_DIR:
                _clear_folder(entry)
            elif entry.is_file() and _written_by_us(name, entry.name):
                entry.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass  # something that is not ours is inside: it stays


def _written_by_us(folder: str, name: str) -> bool:
    if folder == layout.PRIOR_DIR:
        return name in layout.PRIOR_FILES or _is_our_temp(name, layout.PRIOR_FILES)
    if folder == layout.TENSORBOARD_DIR:
        return layout.is_event_file(name)
    return name.endswith(".json") or (name.startswith(".") and name.endswith(".tmp"))  # cache/


def check_out_folder(path: Path, *, overwrite: bool) -> bool:
    """Whether a new run may start in `path`; -> True when an old run there must be cleared
    first. VaekitError (nothing touched) for a file, a folder that is not a run, or a run
    without --overwrite."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VaekitError(f"--out {path} is a file; give a folder")
    if not path.is_dir() or all(p.name == layout.LOCK_FILE for p in path.iterdir()):
        return False
    if not is_vaekit_run(path):
        raise VaekitError(
            f"--out {path} is a non-empty folder that is not a vaekit run; choose another (nothing was changed)"
        )
    if not overwrite:
        raise VaekitError(
            f"{path} already holds a run; pass --resume {path} to continue it, or --overwrite to start again"
        )
    return True


class FolderLock:
    """An exclusive lock on a folder for as long as a process trains in it (flock on a file in
    it, released by the system if the process dies). A second process is refused at once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / layout.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise VaekitError(
                f"another vaekit process is working in {self.folder}; wait for it to finish or choose another --out"
            ) from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

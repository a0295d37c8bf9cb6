"""Files written whole or not at all: to a temporary name in the same folder, flushed to disk,
then renamed into place. A process killed at any moment leaves the old complete file or the new
one, never half of one. Everything vaekit writes goes through here."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)  # read the process umask (os.umask sets and returns the old one) ...
os.umask(_UMASK)  # ... and put it back


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions an ordinary write would (umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:  # a full disk or a file-size limit: say which file could not be written
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, value: Any) -> Path:
    return atomic_write(path, json.dumps(value, indent=2) + "\n")

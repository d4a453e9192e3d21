"""The one workspace root on disk, safe paths inside it, and atomic writes.

Every file the app writes lives under `workspace_root()` (default `./workspace`, overridden by the
`CNN_LAB_WORKSPACE` environment variable). Writes go to a temporary file in the same folder and are then
renamed into place, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

ENV_VAR = "CNN_LAB_WORKSPACE"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


def workspace_root() -> Path:
    root = Path(os.environ.get(ENV_VAR, "workspace")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def safe_name(name: str) -> str:
    """Return `name` if it is a plain file/folder name (no separators, no '..'); raise ValueError if not."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name in {".", ".."} or ".." in name:
        raise ValueError(f"'{name}' is not a valid name: use letters, digits, '.', '_' or '-' (max 128)")
    return name


def unique_name(folder: Path, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... : the first name not taken in `folder` (checked with safe_name)."""
    name, i = base, 1
    while (Path(folder) / name).exists():
        i += 1
        name = f"{base}-{i}"
    return safe_name(name)


def reserve_folder(folder: Path, base: str) -> str:
    """Like `unique_name`, and creates the folder: two callers finishing at once (two tabs, the page and the
    CLI) cannot both take one name, as checking first and creating later would let them."""
    while True:
        name = unique_name(folder, base)
        try:
            (Path(folder) / name).mkdir(parents=False)
            return name
        except FileExistsError:
            continue


def ws_path(*parts: str, root: Path | None = None) -> Path:
    """A path inside the workspace; raises ValueError if the parts would escape it."""
    base = (root or workspace_root()).resolve()
    p = base.joinpath(*parts).resolve()
    if p != base and base not in p.parents:
        raise ValueError(f"path {'/'.join(parts)!r} escapes the workspace")
    return p


def output_path(path: str | Path, what: str, suffix: str = "") -> Path:
    """Where a file the user named on the command line is written (`what` names the option in messages):
    inside the workspace, relative paths from its root. A path outside it, a folder, or (with `suffix`) a
    name without that ending is a UserError, before anything runs."""
    from core.errors import UserError

    if suffix and not str(path).endswith(suffix):
        raise UserError(f"{what} must name a {suffix} file")
    try:
        target = ws_path(str(path))
    except ValueError:
        raise UserError(f"{what} {str(path)!r} is outside the workspace ({workspace_root()}); give a path "
                        "inside it") from None
    if target == workspace_root().resolve() or target.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; give a file name")
    return target


def atomic_write(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call `writer(tmp_path)` then rename tmp_path onto `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def jsonable(o: Any) -> Any:
    """A strict-JSON copy: NaN/inf become None (e.g. a profit factor without a losing trade), numpy scalars
    and arrays become Python numbers and lists, datetimes ISO text, timedeltas seconds."""
    import datetime as dt
    import math

    import numpy as np

    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, dt.datetime):
        return o.isoformat()
    if isinstance(o, dt.timedelta):
        return o.total_seconds()
    return o


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda t: t.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda t: t.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))

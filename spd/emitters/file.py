"""The file emitter: JSON lines appended to a templated path, fsynced before `send` returns.

Files are created mode 0600, in directories created 0700, and kept open (one handle per
resolved path). SIGHUP (`reopen`) closes them so logrotate's renamed files are let go. A torn
last line left by a crash is cut away the first time a file is opened, so every line in the file
is whole JSON. An output that is a symbolic link or not a regular file is refused (a delivery
error naming the path): a link planted there must not make spd append to, or "repair", a file
it points at.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Literal

from spd.core.environment import unwritable_folder
from spd.core.fields import Template
from spd.core.problems import Problem, error
from spd.emitters.base import Emitter, EmitterSettings


def template_folder(template: str) -> Path:
    """The folder every file of a path template lies in: the part before the first placeholder."""
    prefix = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        prefix += literal
        if field is not None:
            break
    prefix = os.path.expanduser(prefix)
    return Path(prefix) if prefix.endswith("/") else Path(prefix).parent


class FileEmitterConfig(EmitterSettings):
    summary = "JSON lines appended to files (a path template), fsynced per page"
    type: Literal["file"] = "file"
    path: Template  # {poller}, {object_type}, {account}, {date}
    fsync: bool = True

    def build(self, name: str) -> Emitter:
        from spd.emitters.file_writer import FileEmitter  # lazy: asyncio, for a built emitter only

        return FileEmitter(name, self.path, fsync=self.fsync)

    def describe(self) -> str:
        return f"file {self.path}" + (" (fsync)" if self.fsync else "")

    def resolved(self, base: Path) -> EmitterSettings:
        return self.model_copy(update={"path": str(base / Path(self.path).expanduser())})

    def environment(self, name: str) -> list[Problem]:
        reason = unwritable_folder(template_folder(self.path))
        return [] if reason is None else [error("emitters", name, "path", message=(
            f"cannot write there: {reason}; choose a folder the user spd runs as can write "
            "(under systemd: its StateDirectory or a ReadWritePaths= entry)"))]

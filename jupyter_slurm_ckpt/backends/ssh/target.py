"""Where a cluster is: ``ssh://[user@]host[:port][/folder]``, checked before ``ssh`` sees it.

The host is whatever the user's ``ssh`` understands (an alias of ``~/.ssh/config`` too); it may
not start with ``-`` (``ssh`` would read it as an option) and holds no space or control
character. A folder after the host follows git's URLs: ``ssh://host/~/jobs`` is ``jobs`` in the
remote home, ``ssh://host/scratch/jobs`` is ``/scratch/jobs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "ssh://"

_HOST = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$")
_FOLDER_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


def is_ssh_url(text: str | None) -> bool:
    """Whether ``text`` names a cluster over SSH (``ssh://...``, or ``ssh`` alone)."""
    return bool(text) and (str(text) == "ssh" or str(text).startswith(SCHEME))


@dataclass(frozen=True)
class SshTarget:
    """A host reached with the user's ``ssh``, and optionally a folder there."""

    host: str
    user: str | None = None
    port: int | None = None
    #: The folder part of the URL ("" when none): ``~/jobs`` or an absolute path.
    folder: str = ""

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """Read ``ssh://[user@]host[:port][/folder]`` (or ``[user@]host``).

        Raises
        ------
        ValueError
            Saying what is wrong and what is expected.
        """
        raw = str(text).strip()
        rest = raw[len(SCHEME) :] if raw.startswith(SCHEME) else raw
        where, slash, folder = rest.partition("/")
        user, at, host = where.rpartition("@")
        port: int | None = None
        if ":" in host:
            host, _, port_text = host.partition(":")
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{raw!r}: the port must be a number from 1 to 65535")
            port = int(port_text)
        if not _HOST.match(host):
            raise ValueError(
                f"{raw!r} names no host: expected ssh://[user@]host[:port] (a host of your "
                "~/.ssh/config works too), e.g. ssh://login-node"
            )
        if at and not _USER.match(user):
            raise ValueError(f"{raw!r}: {user!r} is not a user name")
        if slash:
            folder = _folder(raw, folder)
        return cls(host, user or None, port, folder)

    @property
    def url(self) -> str:
        """``ssh://[user@]host[:port]`` (without the folder): how the jobs name their cluster."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{SCHEME}{user}{self.host}{port}"

    def without_folder(self) -> SshTarget:
        """The same host, no folder."""
        return SshTarget(self.host, self.user, self.port)

    def ssh_options(self) -> list[str]:
        """``ssh`` options that name the user and the port (the host goes after ``--``)."""
        options = []
        if self.user:
            options += ["-l", self.user]
        if self.port:
            options += ["-p", str(self.port)]
        return options

    def __str__(self) -> str:
        return self.url[len(SCHEME) :]


def _folder(raw: str, folder: str) -> str:
    if _FOLDER_FORBIDDEN.search(folder) or not folder.strip("/"):
        raise ValueError(f"{raw!r}: expected a folder after the host, e.g. ssh://host/~/jobs")
    if folder == "~" or folder.startswith("~/"):
        return folder.rstrip("/")
    return "/" + folder.rstrip("/")

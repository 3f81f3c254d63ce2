"""Keystone's Fernet key repositories (tokens, credentials): created once, rotated, shared.

Stage 5 (deploy). Keys are secrets, so the pure renderer never sees them: the deployer keeps
the one authoritative copy of each repository in its state dir (directory 0700, keys 0600)
and copies it whole to every Keystone node, which is what makes a token issued by one node
valid on the others. Generating them deterministically from secrets.yaml would work too, but
rotation would then need a counter in the secrets and every old key re-derivable forever;
real random keys in one place are simpler and are what `keystone-manage` produces.

The layout and the rotation are Keystone's own (`keystone.common.fernet_utils`), done here
without importing Keystone (seconds of imports on every `up`): files named by integer, each a
`Fernet.generate_key()` value without newline; the highest number is the primary (encrypts),
`0` is the staged key (the next primary, already known to every node), the others only
decrypt. Rotation promotes 0 to max+1, creates a new 0, and purges the oldest so that
`max_active_keys` remain. Because 0 reached every node at the previous sync, a node that
already has the rotated set issues tokens the others still validate while the copy runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from hastack.errors import HastackError

# The repositories Keystone reads, by name: (path in keystone.conf, what they protect).
REPOSITORIES = {
    "fernet-keys": "/etc/keystone/fernet-keys/",
    "credential-keys": "/etc/keystone/credential-keys/",
}
# Keystone's default `[fernet_tokens] max_active_keys`.
MAX_ACTIVE_KEYS = 3


class KeyRepositoryError(HastackError):
    """A key repository that is missing, unreadable or malformed."""


def keys_dir(state: Path) -> Path:
    return state / "keystone"


def read_keys(repo: Path) -> dict[int, bytes]:
    """index -> key of one repository (Keystone ignores non-numeric and empty files)."""
    keys: dict[int, bytes] = {}
    if not repo.is_dir():
        return keys
    for path in repo.iterdir():
        if path.name.isdigit() and path.is_file():
            data = path.read_bytes()
            if data:
                keys[int(path.name)] = data
    return keys


def _write_key(repo: Path, index: int) -> None:
    # Lab only (the `lab` extra): a plain install must import this module without it.
    from cryptography.fernet import Fernet

    tmp = repo / f"{index}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, Fernet.generate_key())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, repo / str(index))


def ensure_repository(repo: Path) -> bool:
    """Create a repository with a staged key 0 and a primary key 1 unless it has keys;
    returns whether it was created."""
    if read_keys(repo):
        return False
    repo.mkdir(parents=True, exist_ok=True)
    repo.chmod(0o700)
    repo.parent.chmod(0o700)
    _write_key(repo, 0)
    rotate(repo)
    return True


def rotate(repo: Path, max_active_keys: int = MAX_ACTIVE_KEYS) -> int:
    """Keystone's rotation; returns the new primary key's index."""
    if max_active_keys < 2:
        raise KeyRepositoryError(f"max_active_keys must be at least 2, not {max_active_keys}")
    keys = read_keys(repo)
    if 0 not in keys:
        raise KeyRepositoryError(f"{repo}: no staged key 0: not a Keystone key repository")
    primary = max(keys) + 1
    os.replace(repo / "0", repo / str(primary))
    _write_key(repo, 0)
    # Without the new staged key 0: keep the newest max_active_keys - 1.
    older = sorted((i for i in keys if i != 0), reverse=True)
    for index in older[max_active_keys - 2:]:
        (repo / str(index)).unlink()
    return primary


def primary(repo: Path) -> int:
    keys = read_keys(repo)
    if not keys:
        raise KeyRepositoryError(f"{repo}: no keys")
    return max(keys)


def ensure_all(state: Path) -> list[str]:
    """Every repository Keystone needs, created once in the state dir; returns those made."""
    return [name for name in REPOSITORIES if ensure_repository(keys_dir(state) / name)]

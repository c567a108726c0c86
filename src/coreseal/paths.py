"""Where coreseal keeps its state: under / by default, or under --root."""

import hashlib
import os
from dataclasses import dataclass

ROOT_ENV = "CORESEAL_ROOT"


@dataclass(frozen=True)
class Paths:
    root: str

    def _under(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def config(self) -> str:
        return self._under("etc", "coreseal", "coreseal.toml")

    @property
    def state(self) -> str:
        return self._under("var", "lib", "coreseal")

    @property
    def dumps(self) -> str:
        return os.path.join(self.state, "dumps")

    @property
    def events(self) -> str:
        return os.path.join(self.state, "events.db")

    @property
    def provider(self) -> str:
        return os.path.join(self.state, "provider")

    @property
    def key_cache_dir(self) -> str:
        return os.path.join(self.state, "keycache")

    @property
    def handler_state(self) -> str:
        return os.path.join(self.state, "handler.json")

    @property
    def tag(self) -> str:
        """Short, stable name of this root: keeps keyring entries and
        launchers of several roots (tests, demos) apart."""
        return hashlib.sha256(os.path.realpath(self.root).encode()).hexdigest()[:12]


def resolve(root: str | None = None) -> Paths:
    if root is None:
        root = os.environ.get(ROOT_ENV)
    if root is not None and not root.strip():
        # An empty variable must not silently mean the real host.
        raise ValueError("an empty root is refused")
    return Paths(os.path.abspath(root or "/"))

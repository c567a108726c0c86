import contextlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from coreseal.keys.cache import KeyringCache  # noqa: E402
from coreseal.paths import resolve  # noqa: E402
from helpers import run  # noqa: E402

VECTORS = os.path.join(os.path.dirname(__file__), "vectors")


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    yield r
    # Keys of this root must not outlive the test in root's user keyring.
    with contextlib.suppress(OSError):
        KeyringCache(resolve(str(r))).forget()


@pytest.fixture
def sealed_root(root):
    r = run(root, "setup")
    assert r.code == 0, r.err
    return root


def write_config(root, text: str) -> None:
    path = root / "etc" / "coreseal" / "coreseal.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

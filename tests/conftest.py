import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A private state directory, so unit tests never touch a real lab's /run/activelab."""
    path = tmp_path / "state"
    monkeypatch.setenv("ACTIVELAB_STATE_DIR", str(path))
    return path

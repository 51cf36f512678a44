"""The allocator setting, in a fresh interpreter each time (it changes the whole process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dropscribe.adapters.allocator import ENV_OVERRIDE

PROBE = """
import ctypes, sys
from dropscribe.adapters.allocator import map_large_blocks, return_freed_memory
print(map_large_blocks())
return_freed_memory()
"""


def probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != ENV_OVERRIDE}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_get_their_own_mapping_on_glibc() -> None:
    assert probe() == "True"


def test_an_operator_threshold_in_the_environment_is_kept() -> None:
    assert probe(**{ENV_OVERRIDE: "4194304"}) == "False"

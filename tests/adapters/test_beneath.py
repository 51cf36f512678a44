"""Support files read like recordings, on real files, links, FIFOs and sockets: links below the root are
never followed, nothing but a regular file is read, and never more than the cap."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from dropscribe.adapters.beneath import Contents, RefusedError, open_beneath, read_capped
from tests.support.blocking import finishes

CAP = 4096
T = TypeVar("T")


def refused(call: Callable[[], object]) -> RefusedError:
    with pytest.raises(RefusedError) as caught:
        finishes(call)
    return caught.value


@pytest.fixture
def root(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    (inbox / "a" / "b").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret\n")
    return inbox


class TestOpenBeneath:
    def test_reads_a_file_below_the_root_with_its_stat(self, root: Path) -> None:
        """The bytes come back with the stat of the file that was read."""
        target = root / "a" / "b" / "terms.txt"
        target.write_text("Qwen, DashScope\n")

        contents = open_beneath(root, "a/b/terms.txt", max_bytes=CAP)

        assert contents.data == b"Qwen, DashScope\n"
        assert (contents.stat.st_ino, contents.stat.st_size) == (target.stat().st_ino, 16)

    def test_the_root_itself_may_be_reached_through_a_link(self, root: Path, tmp_path: Path) -> None:
        """Links in the root's own path are the admin's (a mount point under /srv, say)."""
        (root / "terms.txt").write_text("x")
        (tmp_path / "share").symlink_to(root)

        assert open_beneath(tmp_path / "share", "terms.txt", max_bytes=CAP).data == b"x"

    @pytest.mark.parametrize("target", ["../secret.txt", "a/real.txt"])
    def test_a_link_as_the_file_is_refused(self, root: Path, target: str) -> None:
        """A link is refused wherever it points, out of the root or inside it."""
        (root / "a" / "real.txt").write_text("inside")
        (root / "terms.txt").symlink_to(target)

        error = refused(lambda: open_beneath(root, "terms.txt", max_bytes=CAP))

        assert (error.path, error.reason) == ("terms.txt", "is a symbolic link (links are not followed)")

    def test_a_link_as_a_folder_on_the_way_is_refused(self, root: Path, tmp_path: Path) -> None:
        """A folder swapped for a link is refused too, and named."""
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "terms.txt").write_text("secret")
        (root / "a" / "link").symlink_to(tmp_path / "elsewhere")

        error = refused(lambda: open_beneath(root, "a/link/terms.txt", max_bytes=CAP))

        assert str(error) == "a/link is a symbolic link (links are not followed)"

    def test_a_file_as_a_folder_on_the_way_is_refused(self, root: Path) -> None:
        (root / "a" / "plain").write_text("x")

        error = refused(lambda: open_beneath(root, "a/plain/x", max_bytes=CAP))

        assert str(error) == "a/plain is not a folder"

    @pytest.mark.parametrize("relpath", ["../secret.txt", "a/../../secret.txt", "/etc/passwd", ".", ""])
    def test_paths_that_leave_the_root_or_name_no_file_are_refused(self, root: Path, relpath: str) -> None:
        """``..`` is refused as such, not resolved; absolute paths are refused."""
        refused(lambda: open_beneath(root, relpath, max_bytes=CAP))

    def test_missing_file_is_file_not_found(self, root: Path) -> None:
        with pytest.raises(FileNotFoundError):
            open_beneath(root, "a/none.txt", max_bytes=CAP)
        with pytest.raises(FileNotFoundError):
            open_beneath(root, "nowhere/none.txt", max_bytes=CAP)

    def test_fifo_socket_and_folder_are_refused_without_blocking(self, root: Path) -> None:
        """A FIFO with no writer would block a plain open forever; it is refused at once."""
        os.mkfifo(root / "pipe")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(root / "sock"))
        expected = {
            "pipe": "is not a regular file (it is a FIFO (named pipe))",
            "sock": "is not a regular file (it is a socket)",
            "a": "is not a regular file (it is a folder)",
        }
        for name, reason in expected.items():
            assert refused(partial(open_beneath, root, name, max_bytes=CAP)).reason == reason

    def test_device_is_refused(self, root: Path) -> None:
        try:
            os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating device nodes needs CAP_MKNOD")

        assert refused(lambda: open_beneath(root, "null", max_bytes=CAP)).reason == (
            "is not a regular file (it is a device)"
        )

    def test_sparse_giant_is_refused_by_its_size_unread(self, root: Path) -> None:
        """A 3 GB sparse file is judged by fstat: refused at once, not read."""
        giant = root / "giant.yaml"
        with open(giant, "wb") as out:
            out.truncate(3 * 1024**3)
        started = time.monotonic()

        error = refused(lambda: open_beneath(root, "giant.yaml", max_bytes=CAP))

        assert error.reason == "is too large (3,221,225,472 bytes; at most 4,096)"
        assert time.monotonic() - started < 1.0

    def test_exactly_the_cap_is_read(self, root: Path) -> None:
        (root / "full").write_bytes(b"x" * CAP)
        (root / "over").write_bytes(b"x" * (CAP + 1))

        assert len(open_beneath(root, "full", max_bytes=CAP).data) == CAP
        assert refused(lambda: open_beneath(root, "over", max_bytes=CAP)).reason.startswith("is too large")

    def test_a_name_flipped_to_a_link_never_yields_the_secret(self, root: Path, tmp_path: Path) -> None:
        """While another process flips a name between a file and a link to a secret as fast as it can,
        every read gives the file or a refusal, never the secret."""
        name = root / "a" / "ctx.txt"
        name.write_text("harmless\n")
        stop = tmp_path / "stop"
        flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(name), str(tmp_path / "secret.txt"),
                                    str(stop)])  # fmt: skip
        seen: dict[str, int] = {}
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                try:
                    outcome = open_beneath(root, "a/ctx.txt", max_bytes=CAP).data.decode()
                except RefusedError as exc:
                    outcome = exc.reason
                except FileNotFoundError:
                    outcome = "missing"
                seen[outcome] = seen.get(outcome, 0) + 1
        finally:
            stop.touch()
            flipper.wait(timeout=10)

        assert "secret\n" not in seen
        assert set(seen) <= {"harmless\n", "is a symbolic link (links are not followed)"}
        assert seen.get("harmless\n", 0) > 0


FLIPPER = """
import os, sys
name, secret, stop = sys.argv[1:]
link, regular = name + ".link", name + ".regular"
while not os.path.exists(stop):
    os.symlink(secret, link)
    os.replace(link, name)
    with open(regular, "w") as out:
        out.write("harmless\\n")
    os.replace(regular, name)
"""


class TestReadCapped:
    def test_follows_links_the_admin_made(self, root: Path, tmp_path: Path) -> None:
        """Files named in the service config may be links: the admin owns them."""
        (tmp_path / "link.txt").symlink_to(tmp_path / "secret.txt")

        contents = read_capped(tmp_path / "link.txt", max_bytes=CAP)

        assert isinstance(contents, Contents)
        assert contents.data == b"secret\n"

    def test_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "pipe")

        error = refused(lambda: read_capped(tmp_path / "pipe", max_bytes=CAP))

        assert str(error) == f"{tmp_path / 'pipe'} is not a regular file (it is a FIFO (named pipe))"

    def test_reads_at_most_the_cap_even_when_the_size_says_less(self) -> None:
        """/proc files report size 0 and hold more: the read itself stops after cap + 1 bytes."""
        error = refused(lambda: read_capped(Path("/proc/self/maps"), max_bytes=10))

        assert error.reason == "is too large (more than 10 bytes)"

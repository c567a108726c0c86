"""Output files that appear whole or not at all.

Outputs are written to an unnamed O_TMPFILE inode in the destination's
directory and linked into place only after the last byte is verified, so a
crash or kill -9 leaves nothing behind. Where the filesystem lacks
O_TMPFILE, a named temporary file is used and removed on every error path.
"""

import contextlib
import errno
import os
import secrets
import stat

from .errors import CoresealError, UsageError


def same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def same_as_stdout(in_path: str) -> bool:
    try:
        so, si = os.fstat(1), os.stat(in_path)
    except OSError:
        return False
    return (so.st_dev, so.st_ino) == (si.st_dev, si.st_ino)


def check_output(in_path: str | None, out_path: str, force: bool) -> None:
    """Refuses an output that is the input, exists, or cannot be made, before
    anything is read."""
    if not out_path:
        raise UsageError("the output file name is empty")
    if out_path.endswith("/"):
        raise UsageError(f"{out_path} names a directory, not a file")
    if in_path is not None and same_file(in_path, out_path):
        raise UsageError(f"{out_path} is the same file as the input")
    if os.path.isdir(out_path):
        raise UsageError(f"{out_path} is a directory")
    if os.path.lexists(out_path) and not force:
        raise UsageError(f"{out_path} exists", hint="use --force to replace it")
    parent = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(parent):
        raise CoresealError(f"cannot write {out_path}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or _read_only(parent):
        raise CoresealError(f"cannot write {out_path}: {parent} is not writable")


def _read_only(directory: str) -> bool:
    return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)


# What open(O_TMPFILE) says where the filesystem lacks it.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


class AtomicFile:
    """A binary file that becomes ``path`` on ``commit()``, else vanishes."""

    def __init__(
        self,
        path: str,
        *,
        replace: bool = False,
        mode: int = 0o600,
        direct: bool = False,
        sync: bool = True,
    ):
        """``direct``: big output, written around the page cache (see
        directwrite). ``sync=False`` skips fsync and O_DIRECT: a crash still
        leaves nothing, but after a power cut the file may be missing or
        fail to open."""
        self.path = path
        self.sync = sync
        self.replace = replace
        directory = os.path.dirname(os.path.abspath(path))
        self._dir = directory
        self._named = None
        old = os.umask(0o077)
        try:
            fd, direct = self._open(directory, mode, direct, sync)
        finally:
            os.umask(old)
        if direct is None:
            self.file = os.fdopen(fd, "w+b")
        else:
            from .directwrite import DirectWriter

            self.file = DirectWriter(fd, direct)
        self.committed = False

    def _open(self, directory: str, mode: int, direct: bool, sync: bool):
        """The fd, and None for a plain file, else whether O_DIRECT is on.
        Filesystems without O_DIRECT still get the batched writer. Unsynced
        outputs are plain files: two threads copying into one file's page
        cache measured three times slower than one."""
        direct = direct and sync
        extra = [os.O_DIRECT, 0] if direct else [0]
        for flag in extra:
            try:
                fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | flag, mode)
                return fd, (bool(flag) if direct else None)
            except OSError as e:
                if e.errno == errno.EINVAL and flag:
                    continue  # no O_DIRECT here
                if e.errno not in _NO_TMPFILE:
                    # A full disk, a read-only one: say so of the output.
                    raise OSError(e.errno, e.strerror, self.path) from None
                break
        self._named = os.path.join(directory, f".coreseal-tmp-{secrets.token_hex(6)}")
        fd = os.open(self._named, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode)
        return fd, (False if direct else None)

    def commit(self) -> None:
        f = self.file
        f.flush()
        if self.sync:
            os.fsync(f.fileno())
        if self._named is None:
            self._link_tmpfile()
        elif self.replace:
            os.replace(self._named, self.path)
        else:
            os.link(self._named, self.path)
            os.unlink(self._named)
        self._named = None
        self.committed = True
        f.close()
        if self.sync:
            _fsync_dir(self._dir)

    def _link(self, name: str) -> None:
        # A dir fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which links
        # the open inode behind /proc/self/fd/N rather than the magic link.
        dfd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.link(
                f"/proc/self/fd/{self.file.fileno()}",
                os.path.basename(name),
                dst_dir_fd=dfd,
                follow_symlinks=True,
            )
        except OSError as e:
            # Name the output, not the /proc link (EEXIST stays
            # FileExistsError).
            raise OSError(e.errno, e.strerror, name) from None
        finally:
            os.close(dfd)

    def _link_tmpfile(self) -> None:
        if not self.replace:
            self._link(self.path)
            return
        tmp = os.path.join(self._dir, f".coreseal-tmp-{secrets.token_hex(6)}")
        self._link(tmp)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        if self._named:
            with contextlib.suppress(OSError):
                os.unlink(self._named)
            self._named = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.committed:
            self.abort()
        return False


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(path: str) -> str:
    """Creates ``path`` (and parents) as 0700 if missing; returns it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def write_private(path: str, data: bytes) -> None:
    """Writes a small private file atomically (config, secrets, state)."""
    private_dir(os.path.dirname(os.path.abspath(path)))
    with AtomicFile(path, replace=True) as out:
        out.file.write(data)
        out.commit()

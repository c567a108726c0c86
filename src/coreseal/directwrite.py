"""Writing big outputs around the page cache (O_DIRECT).

Why: a dump's worth of dirty pages competes with everything else for the
memory of a host that just crashed, and fsync then pays for writing it all
at once. On this machine a buffered 1 GiB write took 0.3 to 3.9 s (fresh
page-cache pages are slow to come by in this VM) plus 0.4 s of fsync; the
same bytes through O_DIRECT took 0.7 to 0.9 s, already durable
(docs/limitations.md, "Output files").

O_DIRECT wants block-aligned memory, offsets and lengths, so bytes are
gathered in page-aligned buffers: one fills while helper threads write
the others. Seeking forward leaves holes, to the block. The unaligned
tail and any rewrite of bytes already passed (the seal header) go through
the page cache at ``finish()``, once O_DIRECT is off.
"""

import errno
import fcntl
import mmap
import os
import queue
import threading

BLOCK = 4096
CHUNK = 4 << 20
BUFFERS = 4  # 16 MiB: with two, bursts of the sealer left the disk idle
WRITERS = 2


def _down(n: int) -> int:
    return n - n % BLOCK


def _up(n: int) -> int:
    return _down(n + BLOCK - 1)


class DirectWriter:
    """A write-only, seekable binary file over ``fd``. ``direct`` says
    whether ``fd`` was opened with O_DIRECT; if the filesystem then refuses
    an aligned write, O_DIRECT is turned off and writing goes on."""

    def __init__(self, fd: int, direct: bool):
        self._fd, self.direct = fd, direct
        self._bufs = [mmap.mmap(-1, CHUNK) for _ in range(BUFFERS)]
        self._free = list(range(1, BUFFERS))
        self._cur = 0
        self._base = self._fill = 0  # the current buffer holds [base, base+fill)
        self._pos = self._size = 0
        self._patches: list[tuple[int, bytes]] = []
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._finished = self.closed = False

    # -- the file interface the sealer, extractor and handler use

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}
        pos = base[whence] + offset
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def truncate(self, size: int) -> int:
        self._size = size
        return size

    def write(self, data) -> int:
        if self._finished:
            raise ValueError("write after finish")
        view = memoryview(data).cast("B")
        total = len(view)
        while len(view):
            n = self._place(view)
            self._pos += n
            self._size = max(self._size, self._pos)
            view = view[n:]
        return total

    def flush(self) -> None:
        """Everything to the kernel: the buffers, the tail and the patches.
        Nothing may be written after it; fsync is the caller's."""
        self.finish()

    # -- placing bytes

    def _place(self, view: memoryview) -> int:
        pos = self._pos
        if pos < self._base:
            n = min(len(view), self._base - pos)
            self._patches.append((pos, bytes(view[:n])))
            return n
        off = pos - self._base
        if off >= CHUNK or _down(pos) > _up(self._base + self._fill):
            self._flush(pos)
            off = pos - self._base
        buf = self._bufs[self._cur]
        if off > self._fill:  # a gap smaller than two blocks: real zeros
            buf[self._fill : off] = bytes(off - self._fill)
        n = min(len(view), CHUNK - off)
        buf[off : off + n] = view[:n]
        self._fill = max(self._fill, off + n)
        if self._fill == CHUNK:
            self._flush(self._base + CHUNK)
        return n

    def _flush(self, next_pos: int) -> None:
        """Hands the current buffer to the writer thread and starts the
        other one at ``next_pos``'s block."""
        length = _up(self._fill)
        if length:
            buf = self._bufs[self._cur]
            if length > self._fill:
                buf[self._fill : length] = bytes(length - self._fill)
            self._submit(length)
            self._cur = self._free.pop() if self._free else self._collect()
        self._base = _down(next_pos)
        self._fill = next_pos - self._base
        if self._fill:
            self._bufs[self._cur][: self._fill] = bytes(self._fill)

    # -- the writer threads

    def _submit(self, length: int) -> None:
        """Queues the current buffer's first ``length`` bytes for writing at
        ``base``."""
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._run, daemon=True, name="coreseal-writer")
                for _ in range(WRITERS)
            ]
            for t in self._threads:
                t.start()
        self._todo.put((self._cur, length, self._base))
        self._in_flight += 1

    def _collect(self) -> int:
        """Waits for a write to end; returns its buffer, now free."""
        index, error = self._done.get()
        self._in_flight -= 1
        if error is not None:
            self._free.append(index)
            raise error
        return index

    def _run(self) -> None:
        while (job := self._todo.get()) is not None:
            index, length, offset = job
            try:
                self._pwrite(memoryview(self._bufs[index])[:length], offset)
                self._done.put((index, None))
            except OSError as e:
                self._done.put((index, e))

    def _pwrite(self, view: memoryview, offset: int) -> None:
        retried = False
        while len(view):
            try:
                n = os.pwrite(self._fd, view, offset)
            except OSError as e:
                # EINVAL once: O_DIRECT refused (maybe already turned off by
                # the other writer thread); write on buffered.
                if e.errno != errno.EINVAL or retried:
                    raise
                self._buffered()
                retried = True
                continue
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view, offset = view[n:], offset + n

    def _buffered(self) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        if flags & os.O_DIRECT:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self.direct = False

    # -- the end

    def _stop(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        for t in self._threads:
            t.join()
        self._threads = []

    def finish(self) -> None:
        if self._finished:
            return
        # The whole blocks through O_DIRECT; the tail after it is off, so
        # that no padding ever goes past the file's end (a padded block
        # could hit a full disk or a size limit the file itself fits).
        whole = _down(self._fill)
        try:
            if whole:
                self._submit(whole)
            while self._in_flight:
                self._free.append(self._collect())
        finally:
            self._stop()
        if self.direct:
            self._buffered()
        tail = memoryview(self._bufs[self._cur])[whole : self._fill]
        self._pwrite(tail, self._base + whole)
        os.ftruncate(self._fd, self._size)
        for offset, data in self._patches:
            self._pwrite(memoryview(data), offset)
        self._patches.clear()
        self._finished = True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            while self._in_flight:
                try:
                    self._collect()
                except OSError:
                    pass
            self._stop()
        finally:
            os.close(self._fd)
            # Dropped, not closed: a failed write's traceback may still hold
            # a view of its buffer.
            self._bufs = []

"""Cutting a stream into segments and sealing them on several threads.

One reader fills reused buffers (holding one segment back, so it knows
which is last), worker threads compress and seal (zstd and AES-GCM release
the GIL), and the caller's thread writes records in order. At most
``2 * threads`` segments are in flight, so memory stays flat whatever the
dump's size.
"""

import os
import queue
import threading
from collections import deque

from . import constants as c
from .stream import SegmentSealer, aligned, read_full


class DumpTooLarge(Exception):
    """The input passed ``max_size`` and ``on_oversize`` is 'drop'."""


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


HEAD = 64  # buffer bytes before the segment: room for the encoding byte


class SegmentReader:
    """Yields ``(index, buffer, length, last)``; the segment's bytes are
    ``buffer[HEAD:HEAD + length]``, so a raw segment is sealed where it lies,
    with its encoding byte just before it. The consumer hands each buffer
    back with ``release`` once its record is written."""

    def __init__(self, src, segment_size: int, limit: int, on_oversize: str):
        self.src, self.size, self.limit = src, segment_size, limit
        self.on_oversize = on_oversize
        self.offered = self.kept = 0
        self._pool: list = []

    def release(self, buf) -> None:
        self._pool.append(buf)

    def _buffer(self):
        return self._pool.pop() if self._pool else aligned(HEAD + self.size)

    def _fill(self, buf) -> int:
        return read_full(self.src, memoryview(buf)[HEAD:])

    def _oversize(self) -> None:
        if self.on_oversize == "drop":
            raise DumpTooLarge(f"dump exceeds {self.limit} bytes")

    def _drain(self, buf) -> None:
        while True:
            n = self._fill(buf)
            self.offered += n
            if n < self.size:
                return

    def __iter__(self):
        cur = self._buffer()
        cur_len = self._fill(cur)
        self.offered = cur_len
        index = 0
        while True:
            take = min(cur_len, self.limit - self.kept)
            nxt, nxt_len = None, 0
            if take < cur_len:
                self._oversize()
                scratch = self._buffer()
                self._drain(scratch)
                self.release(scratch)
            elif cur_len == self.size:
                nxt = self._buffer()
                nxt_len = self._fill(nxt)
                self.offered += nxt_len
                if nxt_len and self.kept + take >= self.limit:
                    # The limit falls on a segment boundary: this one is last.
                    self._oversize()
                    self._drain(nxt)
                    nxt_len = 0
            last = nxt_len == 0
            if last and nxt is not None:
                self.release(nxt)
            self.kept += take
            yield index, cur, take, last
            if last:
                return
            index += 1
            cur, cur_len = nxt, nxt_len


class _Records:
    """Record buffers, handed back once written."""

    def __init__(self, segment_size: int):
        self.size = c.RECORD_LENGTH_SIZE + segment_size + c.RECORD_OVERHEAD
        self._free: list = []

    def take(self):
        return self._free.pop() if self._free else aligned(self.size)

    def give(self, buf) -> None:
        self._free.append(buf)


def seal_segments(
    reader: SegmentReader,
    dst,
    payload_key: bytes,
    level: int,
    threads: int,
    progress=None,
) -> None:
    def make():
        return SegmentSealer(payload_key, reader.size, level).seal_into

    records = _Records(reader.size)
    written = 0
    if threads <= 1:
        seal, out = make(), records.take()
        for index, buf, n, last in reader:
            length = seal(index, buf, HEAD, n, last, out)
            dst.write(memoryview(out)[:length])
            reader.release(buf)
            written += n
            if progress:
                progress(written)
        return

    pool = Workers(threads, make)
    pending: deque = deque()

    def write_oldest() -> None:
        nonlocal written
        job, buf, n, out = pending.popleft()
        dst.write(memoryview(out)[: job.result()])
        reader.release(buf)
        records.give(out)
        written += n
        if progress:
            progress(written)

    try:
        for index, buf, n, last in reader:
            out = records.take()
            job = pool.submit(index, buf, HEAD, n, last, out)
            pending.append((job, buf, n, out))
            while len(pending) > 2 * threads:
                write_oldest()
        while pending:
            write_oldest()
    finally:
        pool.close()


class _Job:
    __slots__ = ("args", "done", "value", "error")

    def __init__(self, args):
        self.args, self.done = args, threading.Event()
        self.value = self.error = None

    def result(self) -> bytes:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Workers:
    """A few threads, each with its own worker from ``make()`` (zstd
    contexts are not shareable); jobs come back in the order given by
    waiting on them in that order. Plain threads and a queue rather than
    concurrent.futures, whose import (logging among it) would slow the
    capture handler's start."""

    def __init__(self, threads: int, make):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(
                target=self._run, args=(make,), daemon=True, name=f"coreseal-worker-{i}"
            )
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def _run(self, make) -> None:
        work = make()
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job.value = work(*job.args)
            except BaseException as e:  # handed to the writer, which re-raises
                job.error = e
            job.done.set()

    def submit(self, *args) -> _Job:
        job = _Job(args)
        self._queue.put(job)
        return job

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()

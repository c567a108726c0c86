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

from .stream import SegmentSealer, read_full


class DumpTooLarge(Exception):
    """The input passed ``max_size`` and ``on_oversize`` is 'drop'."""


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class SegmentReader:
    """Yields ``(index, buffer, length, last)``; the consumer hands each
    buffer back with ``release`` once its record is written."""

    def __init__(self, src, segment_size: int, limit: int, on_oversize: str):
        self.src, self.size, self.limit = src, segment_size, limit
        self.on_oversize = on_oversize
        self.offered = self.kept = 0
        self._pool: list[bytearray] = []

    def release(self, buf: bytearray) -> None:
        self._pool.append(buf)

    def _buffer(self) -> bytearray:
        return self._pool.pop() if self._pool else bytearray(self.size)

    def _oversize(self) -> None:
        if self.on_oversize == "drop":
            raise DumpTooLarge(f"dump exceeds {self.limit} bytes")

    def _drain(self, buf: bytearray) -> None:
        while True:
            n = read_full(self.src, buf)
            self.offered += n
            if n < len(buf):
                return

    def __iter__(self):
        cur = self._buffer()
        cur_len = read_full(self.src, cur)
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
                nxt_len = read_full(self.src, nxt)
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


def _view(buf: bytearray, n: int):
    # Whole buffers as they are: comparing a bytearray with bytes is a
    # memcmp, while comparing memoryviews goes byte by byte (~80x slower).
    return buf if n == len(buf) else bytes(memoryview(buf)[:n])


def seal_segments(
    reader: SegmentReader,
    dst,
    payload_key: bytes,
    level: int,
    threads: int,
    progress=None,
) -> None:
    def make():
        return SegmentSealer(payload_key, reader.size, level).seal

    written = 0
    if threads <= 1:
        seal = make()
        for index, buf, n, last in reader:
            dst.write(seal(index, _view(buf, n), last))
            reader.release(buf)
            written += n
            if progress:
                progress(written)
        return

    pool = Workers(threads, make)
    pending: deque = deque()

    def write_oldest() -> None:
        nonlocal written
        job, buf, n = pending.popleft()
        dst.write(job.result())
        reader.release(buf)
        written += n
        if progress:
            progress(written)

    try:
        for index, buf, n, last in reader:
            pending.append((pool.submit(index, _view(buf, n), last), buf, n))
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

"""uWSGI side of `npm run bench:peers`: the spooler function and a small WSGI
app that enqueues through uwsgi.spool() from inside a worker.

Loaded by uwsgi with `--module uwsgi_tasks:application` in the master before it
forks, so the spooler processes inherit `uwsgi.spooler` and the worker the app.

A spool packet carries `task` (noop | stamp | sleep10) and, for `stamp`, `ts`:
the producer's CLOCK_MONOTONIC in ms (float) when the task became visible
(clock.ts: one clock for every process on the host, never stepped). Python
3 gets keys and values as bytes.

What a task records, with the least work per task so that the measurement does
not become the bottleneck it measures:
- every task: its process's completion count, first and last completion time
  (monotonic ms), in this process's slot of a shared counters file (mmap, MAP_SHARED: a
  memory store per task, no system call). The harness reads the file.
- `stamp` tasks also append "lat <ms>" to lat-<pid>: one write() on an fd kept
  open, the same cost the Node-side probes pay.
"""
import mmap
import os
import struct
import time
import uwsgi

REPORT = os.environ["BENCH_REPORT_DIR"]
SLOT = struct.Struct("<qdd")  # count, first ms, last ms
SLOTS = 256

_pid = None
_slot = None
_mm = None
_count = 0
_first = 0.0
_lat_fd = None


def _now_ms():
    return time.monotonic() * 1000.0


def _attach():
    """Per process (a spooler forked from the master, or recycled): claim a slot."""
    global _pid, _slot, _mm, _count, _first, _lat_fd
    _pid = os.getpid()
    _count = 0
    _first = 0.0
    fd = os.open(os.path.join(REPORT, "counters"), os.O_RDWR)
    _mm = mmap.mmap(fd, SLOT.size * SLOTS)
    os.close(fd)
    for k in range(SLOTS):
        try:
            # O_EXCL makes the claim unique between spooler processes.
            os.close(os.open(os.path.join(REPORT, "slot-%d" % k), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            _slot = k
            break
        except FileExistsError:
            continue
    else:
        raise RuntimeError("no free counter slot")
    _lat_fd = os.open(os.path.join(REPORT, "lat-%d" % _pid), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)


def _done():
    global _count, _first
    now = _now_ms()
    _count += 1
    if _count == 1:
        _first = now
    SLOT.pack_into(_mm, _slot * SLOT.size, _count, _first, now)


def spooler(env):
    if _pid != os.getpid():
        _attach()
    task = env.get(b"task")
    if task == b"stamp":
        started = _now_ms()
        os.write(_lat_fd, b"lat %.3f\n" % (started - float(env[b"ts"])))
    elif task == b"sleep10":
        time.sleep(0.010)
    _done()
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def application(environ, start_response):
    """GET /spool?count=N&interval=MS[&seconds=S]: enqueue through uwsgi.spool()
    from this worker, each call stamped just before it; interval 0 means as
    fast as possible; seconds bounds the run instead of count. Answers with the
    number enqueued once done."""
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    count = int(query.get("count", "0"))
    interval = float(query.get("interval", "0")) / 1000.0
    seconds = float(query.get("seconds", "0"))
    task = query.get("task", "stamp").encode()
    start = time.monotonic()
    sent = 0
    while (count and sent < count) or (seconds and time.monotonic() - start < seconds):
        uwsgi.spool({b"task": task, b"ts": b"%.3f" % _now_ms()})
        sent += 1
        if interval:
            delay = start + sent * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % sent]

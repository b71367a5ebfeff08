"""Enqueue spoolerd tasks from Python and read their results (SPOOL-FORMAT.md of spoolerd).

Standard library only; MessagePack bodies through `msgpack` when it is importable, JSON otherwise.
Times go by the spool's clock: the staging file's mtime, stamped by the filesystem that holds the
spool, is "now" (SPOOL-FORMAT.md, "Clocks", foreign producers); Spool(path, clock="local") uses
this host's clock instead.
"""
import errno, hashlib, json, math, os, re, stat, time  # noqa: E401
from dataclasses import dataclass
from datetime import timedelta

try:
    import msgpack
except ImportError:  # JSON bodies only
    msgpack = None

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}\Z")
TASK_ID = re.compile(r"\d{13}[0-9a-f]{16}\Z")
MAX_INT = 2 ** 53 - 1
MAX_DEPTH = 64  # levels of arrays and maps, the body map being level 1
MAX_TIME = 9_999_999_999_999  # the largest DUE, 13 digits
MAX_BYTES = 16 * 1024 * 1024  # the daemon's default file size cap
KEY_FILE_MAX = 8192
UNIQUE_KEY_MAX = 1024
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


class SpoolError(Exception):
    """Every error of this kit; `code` is the error code spoolerd's own runtime uses."""
    code = "SPOOL_ERROR"


class UnencodableValueError(SpoolError, ValueError):
    """A value the format cannot carry (SPOOL-FORMAT.md, "Values"); `path` names it, e.g. task.args[1].when."""
    code = "SPOOL_UNENCODABLE"

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path = path


class TaskNotProcessedError(SpoolError):
    """The task ended without a value: `record` is its result record, `ending` how it ended."""

    def __init__(self, record, what):
        super().__init__(f"task {record.get('name')} {record.get('id')} {what}")
        self.record, self.ending = record, record.get("ending")


class InvalidOptionError(SpoolError, ValueError): code = "SPOOL_BAD_OPTION"
class BadKeyFileError(SpoolError): code = "SPOOL_BAD_KEY_FILE"
class NoLinkError(SpoolError): code = "SPOOL_NO_LINK"
class ResultTimeoutError(SpoolError, TimeoutError): code = "SPOOL_RESULT_TIMEOUT"
class TaskFailedError(TaskNotProcessedError): code = "SPOOL_TASK_DEAD"
class TaskSkippedError(TaskNotProcessedError): code = "SPOOL_TASK_SKIPPED"
class TaskCancelledError(TaskNotProcessedError): code = "SPOOL_TASK_CANCELLED"
class TaskExpiredError(TaskNotProcessedError): code = "SPOOL_TASK_EXPIRED"
class ResultValueLostError(TaskNotProcessedError): code = "SPOOL_RESULT_VALUE_LOST"  # processed; value not kept


@dataclass(frozen=True)
class TaskHandle:
    """An enqueued task; `existing` when a unique key was held and this is the holder."""
    id: str
    name: str
    file: str
    existing: bool = False

    @property
    def encoding(self):
        return self.file.rsplit(".", 1)[1]


def _ms(value, what, minimum=0):
    """A duration in seconds (int or float) or a timedelta, as whole ms (rounded up: never early)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidOptionError(f"{what} must be a number of seconds or a timedelta, not {value!r}")
    ms = math.ceil(value * 1000)
    if ms < minimum:
        raise InvalidOptionError(f"{what} must be at least {minimum} ms, not {value!r} s")
    return ms


def _int(v, what, lo, hi=MAX_INT):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InvalidOptionError(f"{what} must be an integer from {lo} to {hi}, not {v!r}")
    return int(v)


def _text(s, path):
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise UnencodableValueError(path, "a string holding a lone surrogate is not valid Unicode") from None
    return str(s)


def _plain(v, path, depth, binary):
    """`v` checked against "Values" and made plain (tuples as lists, -0.0 as 0.0), or UnencodableValueError."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        if -MAX_INT <= v <= MAX_INT:
            return int(v)
        raise UnencodableValueError(path, f"the integer {v} is beyond ±(2^53 - 1): send it as a string")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise UnencodableValueError(path, f"{v} is not a finite number")
        return float(v) + 0.0
    if isinstance(v, str):
        return _text(v, path)
    if isinstance(v, (bytes, bytearray, memoryview)):
        if binary:
            return bytes(v)
        raise UnencodableValueError(path, "bytes cannot go into a JSON body: use encoding='msgpack' or base64 text")
    if isinstance(v, (list, tuple, dict)):
        if depth > MAX_DEPTH:
            raise UnencodableValueError(path, f"nested deeper than {MAX_DEPTH} levels of arrays and maps")
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise UnencodableValueError(path, f"the map key {k!r} is not a string")
                sub = f"{path}.{k}" if _text(k, path).isidentifier() else f"{path}[{json.dumps(k)}]"
                out[k] = _plain(x, sub, depth + 1, binary)
            return out
        return [_plain(x, f"{path}[{i}]", depth + 1, binary) for i, x in enumerate(v)]
    raise UnencodableValueError(path, f"a {type(v).__name__} is not a plain value (None, bool, int, float, str, "
                                      "bytes, list, tuple or dict with str keys)")


def _lenient_unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass  # gone already; what is left in tmp/ is swept by the daemon


def _read_regular(path, limit):
    """The bytes of regular file `path` (at most `limit`), None if it does not exist; never follows a link."""
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        data = f.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise ValueError(f"{path} is over {limit} bytes")
    return data


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Spool:
    """A spool directory to enqueue into. fsync=True makes each task survive a power loss (about 1 ms each)."""

    def __init__(self, path, *, fsync=False, clock="spool", max_bytes=MAX_BYTES):
        if clock not in ("spool", "local"):
            raise InvalidOptionError(f'clock must be "spool" or "local", not {clock!r}')
        self.root, self.fsync, self.clock, self.max_bytes = os.fspath(path), fsync, clock, max_bytes

    def _dir(self, sub):
        return os.path.join(self.root, sub)

    def enqueue(self, name, *args, priority=50, postpone=None, retries=None, unique=None, unique_while="pending",
                keep_result=None, timeout=None, expires=None, meta=None, encoding=None):
        """Enqueues the call name(*args); returns its TaskHandle (the holder's, `existing`, when `unique` is held).
        Durations (postpone, keep_result, timeout, expires) are seconds or timedeltas."""
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidOptionError(f"task name {name!r} must match [A-Za-z_][A-Za-z0-9_.:-]{{0,127}}: "
                                     "the name the function was registered under")
        _int(priority, "priority (0 runs first)", 0, 99)
        encoding = encoding or ("msgpack" if msgpack else "json")
        if encoding not in ("msgpack", "json") or (encoding == "msgpack" and msgpack is None):
            raise InvalidOptionError(f'encoding {encoding!r}: use "json", or "msgpack" with the msgpack module '
                                     "installed (Debian: python3-msgpack)")
        body = {"version": 1, "type": "fcall", "args": list(args)}
        if retries is not None:
            body["retry"] = {"limit": _int(retries, "retries", 0)}
        if timeout is not None:
            body["timeout"] = _ms(timeout, "timeout", 1)
        if keep_result is not None:
            body["keepResult"] = _ms(keep_result, "keep_result")
        if meta is not None:
            body["meta"] = dict(meta)
        if unique is not None:
            if not isinstance(unique, str) or not 1 <= len(unique) <= UNIQUE_KEY_MAX:
                raise InvalidOptionError(f"unique must be a string of 1 to {UNIQUE_KEY_MAX} characters")
            if unique_while not in ("pending", "running"):
                raise InvalidOptionError(f'unique_while must be "pending" or "running", not {unique_while!r}')
            body.update(unique=unique, **({"uniqueWhile": "running"} if unique_while == "running" else {}))
        body = _plain(body, "task", 1, encoding == "msgpack")
        delay = 0 if postpone is None else _ms(postpone, "postpone")
        expires_in = None if expires is None else _ms(expires, "expires")
        while True:  # again only when a unique key was lost to the daemon's sweep before the task was in
            handle = self._write(name, priority, delay, expires_in, body, encoding, unique_while)
            if handle is not None:
                return handle

    def enqueue_many(self, calls, **options):
        """Enqueues each (name, args) or (name, args, {options}) of `calls`, `options` applying to all of them."""
        return [self.enqueue(c[0], *c[1], **{**options, **(c[2] if len(c) > 2 else {})}) for c in calls]

    def _stage(self):
        """tmp/.kit-…, created exclusively, and "now" from its mtime (spool clock) plus how late a stamp may be."""
        path = os.path.join(self._dir("tmp"), f".kit-{os.getpid()}-{os.urandom(6).hex()}")
        try:
            fd = os.open(path, CREATE_FLAGS, 0o666)
        except FileNotFoundError:
            os.makedirs(self._dir("tmp"), exist_ok=True)
            os.makedirs(self._dir("incoming"), exist_ok=True)
            fd = os.open(path, CREATE_FLAGS, 0o666)
        if self.clock == "local":
            return path, fd, time.time_ns() // 1_000_000, 0
        ns = os.fstat(fd).st_mtime_ns
        # A filesystem keeping whole seconds (sshfs) stamps up to 1 s behind; others up to a timer tick.
        return path, fd, ns // 1_000_000, 1010 if ns % 1_000_000_000 == 0 else 10

    def _write(self, name, priority, delay, expires_in, body, encoding, unique_while):
        staged, fd, now, late = self._stage()
        key_path = key_staged = None
        linked = published = False
        try:
            task_id = f"{now:013d}{os.urandom(8).hex()}"
            due = now + delay + late if delay else now
            if due > MAX_TIME:
                raise InvalidOptionError(f"postpone: the due time must fit 13 digits (before 2286), not {due}")
            file = f"{priority:02d}-{due:013d}-{task_id}-a0-{name}.{encoding}"
            if expires_in is not None:
                body = {**body, "expires": now + expires_in}
            data = (msgpack.packb(body, use_bin_type=True) if encoding == "msgpack" else
                    json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
            if len(data) > self.max_bytes:
                raise UnencodableValueError("task", f"the body is {len(data)} bytes, over the size cap of "
                                                    f"{self.max_bytes}: pass large data by reference (a path, a URL)")
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
            os.close(fd)
            fd = None
            if "unique" in body:
                key_path = os.path.join(self._dir("unique"), hashlib.sha256(
                    f"{name}\n{body['unique']}".encode()).hexdigest())
                key_staged = self._stage_key({"version": 1, "id": task_id, "file": file, "key": body["unique"],
                                              "while": unique_while})
                holder = self._take_key(key_staged, key_path)
                if holder is not None:
                    return TaskHandle(holder["id"], name, holder["file"], existing=True)
                linked = True
            os.rename(staged, os.path.join(self._dir("incoming"), file))
            published = True
            if self.fsync:
                dfd = os.open(self._dir("incoming"), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            # Still ours? A producer stalled past the sweep's grace (60 s) after the link lost its key.
            if linked and self._holder_id(key_path) != task_id and self._withdraw(file):
                return None
            return TaskHandle(task_id, name, file)
        finally:
            if fd is not None:
                os.close(fd)
            if key_staged is not None:
                _lenient_unlink(key_staged)
            if not published:
                _lenient_unlink(staged)
                if linked:
                    self._release_key(key_path, task_id)

    def _stage_key(self, record):
        path = os.path.join(self._dir("tmp"), f".unique-{os.getpid()}-{os.urandom(6).hex()}")
        fd = os.open(path, CREATE_FLAGS, 0o666)
        try:
            _write_all(fd, (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
        except BaseException:
            os.close(fd)
            _lenient_unlink(path)
            raise
        os.close(fd)
        return path

    def _take_key(self, staged, key_path):
        """link() the staged key file to unique/H: None when taken, else the holder's record."""
        while True:
            try:
                os.link(staged, key_path)
                return None
            except FileExistsError:
                pass
            except FileNotFoundError:
                if os.path.isdir(self._dir("unique")):
                    raise
                os.makedirs(self._dir("unique"), exist_ok=True)
                continue
            except OSError as e:
                # Over sshfs a link() onto an existing key fails with EPERM (the SFTP server's bare failure).
                if not (e.errno == errno.EPERM and os.path.lexists(key_path)):
                    if e.errno in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise NoLinkError(f"cannot take a unique key: the filesystem of {self.root} has no hard "
                                          f"links (link() said {errno.errorcode[e.errno]})") from e
                    raise
            holder = self._read_key(key_path)
            if holder is not None:  # None: released meanwhile, so try again
                return holder

    def _read_key(self, path):
        """The record of key file `path` (None if there is none), never following a link."""
        try:
            raw = _read_regular(path, KEY_FILE_MAX)
            record = None if raw is None else json.loads(raw)
            if record is None or record["version"] == 1 and TASK_ID.match(record["id"]) and "file" in record:
                return record
            problem = "not a key file"
        except (OSError, ValueError, TypeError, KeyError) as e:
            problem = str(e)
        raise BadKeyFileError(f"{path} holds the unique key but is not a valid key file ({problem}); a daemon's "
                              "sweep removes it once it is a minute old, or remove it yourself")

    def _holder_id(self, path):
        try:
            return (self._read_key(path) or {}).get("id")
        except SpoolError:
            return None  # not a key file: it names no task

    def _release_key(self, key_path, task_id):
        """Gives back a key taken for a task that was not enqueued ("Releasing a key")."""
        try:
            if self._holder_id(key_path) != task_id:
                return
            aside = os.path.join(self._dir("tmp"), f".unique-gone-{os.getpid()}-{os.urandom(6).hex()}")
            os.rename(key_path, aside)
            if self._holder_id(aside) != task_id:
                os.link(aside, key_path)  # released and taken again in between: it is the other task's
            _lenient_unlink(aside)
        except OSError:
            pass  # left to the daemon's sweep, after its grace

    def _withdraw(self, file):
        aside = os.path.join(self._dir("tmp"), file)
        try:
            os.rename(os.path.join(self._dir("incoming"), file), aside)
        except OSError:
            return False  # a daemon has it already: it stays enqueued
        _lenient_unlink(aside)
        return True

    def wait(self, task, timeout=30.0, poll=0.05):
        """The value task (a TaskHandle or an id) returned, once its result is in results/ (it must keep one:
        keep_result=, or a daemon run with --keep-results). Raises TaskFailedError, TaskSkippedError,
        TaskCancelledError, TaskExpiredError, ResultValueLostError, or ResultTimeoutError after `timeout` s."""
        task_id = task.id if isinstance(task, TaskHandle) else task
        encodings = [task.encoding] if isinstance(task, TaskHandle) else ["msgpack", "json"]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for enc in encodings:
                record = self._read_result(os.path.join(self._dir("results"), f"{task_id}.{enc}"), enc)
                if record is not None:
                    return self._outcome(record)
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(f"no result for task {task_id} within {timeout} s: it may still be waiting "
                                         f"or running (spool show {task_id}), or it keeps no result")
            time.sleep(poll)

    @staticmethod
    def _read_result(path, enc):
        try:
            data = _read_regular(path, None)
            if data is None or enc == "json":
                return None if data is None else json.loads(data)
        except (OSError, ValueError) as e:
            raise SpoolError(f"{path} is not a result record that can be read: {e}") from e
        if msgpack is None:
            raise SpoolError(f"{path} is MessagePack: install msgpack (Debian: python3-msgpack) to read it")
        return msgpack.unpackb(data, raw=False, strict_map_key=False)

    @staticmethod
    def _outcome(record):
        ending, why = record.get("ending"), f": {record['reason']}" if record.get("reason") else ""
        if ending == "processed" and "valueError" not in record:
            return record.get("value")
        err = record.get("error") or {}
        error, what = {
            "processed": (ResultValueLostError, f"was processed, but its value was not kept: {record.get('valueError')}"),
            "dead": (TaskFailedError, f"is a dead letter after {record.get('attempts')} attempt(s): "
                                      f"{err.get('name', 'Error')}: {err.get('message', record.get('reason'))}"),
            "skipped": (TaskSkippedError, "was skipped" + why), "cancelled": (TaskCancelledError, "was cancelled" + why),
            "expired": (TaskExpiredError, "expired before it ran" + why),
        }.get(ending, (TaskNotProcessedError, f"has an unknown ending {ending!r} in its result record"))
        raise error(record, what)

"""enqueue(): the file it leaves in incoming/ (name, body, mode), the values it refuses, the clock it uses."""
import math
import os
import stat
import time
import unittest
from datetime import timedelta
from unittest import mock

import spoolerd_kit
from spoolerd_kit import InvalidOptionError, Spool, UnencodableValueError

from .support import HAS_MSGPACK, NAME_RE, SpoolCase, needs_msgpack


class FileAndBody(SpoolCase):
    def test_a_task_due_now_in_the_default_encoding(self):
        before = time.time_ns() // 1_000_000
        h = self.spool.enqueue("sendEmail", "a@example.com", "hi")
        after = time.time_ns() // 1_000_000
        fields, body, _ = self.task_file(h)
        self.assertEqual(fields["priority"], "50")
        self.assertEqual(fields["attempts"], "0")
        self.assertEqual(fields["name"], "sendEmail")
        self.assertEqual(fields["encoding"], "msgpack" if HAS_MSGPACK else "json")
        self.assertEqual(h.encoding, fields["encoding"])
        self.assertEqual(fields["id"], h.id)
        created = int(h.id[:13])
        self.assertEqual(int(fields["due"]), created, "a task due now is due at its creation time")
        # The spool clock of a local disk is this host's, to a timer tick.
        self.assertLessEqual(before - 20, created)
        self.assertLessEqual(created, after)
        self.assertEqual(body, {"version": 1, "type": "fcall", "args": ["a@example.com", "hi"]})
        self.assertEqual(self.ls("tmp"), [], "nothing is left in tmp/")
        self.assertEqual(self.ls("incoming"), [h.file])

    def test_every_option_lands_in_the_name_or_the_body(self):
        h = self.spool.enqueue("mail.send:v2-x", 1, priority=7, postpone=timedelta(seconds=2), retries=0,
                               keep_result=1.5, timeout=0.25, expires=60, meta={"trace": "abc"}, encoding="json")
        fields, body, _ = self.task_file(h)
        created = int(h.id[:13])
        self.assertEqual(fields["priority"], "07")
        # postponed: never due before creation + delay (+ how late an mtime may be: a tick here)
        self.assertGreaterEqual(int(fields["due"]), created + 2000)
        self.assertLessEqual(int(fields["due"]), created + 2000 + 10)
        self.assertEqual(body, {"version": 1, "type": "fcall", "args": [1], "retry": {"limit": 0},
                                "keepResult": 1500, "timeout": 250, "expires": created + 60_000,
                                "meta": {"trace": "abc"}})

    def test_ids_are_unique_and_random(self):
        handles = [self.spool.enqueue("t", i) for i in range(200)]
        self.assertEqual(len({h.id for h in handles}), 200)
        self.assertEqual(len(self.ls("incoming")), 200)
        self.assertGreater(len({h.id[13:] for h in handles}), 199)

    def test_the_file_mode_follows_the_umask(self):
        old = os.umask(0o022)
        try:
            h = self.spool.enqueue("t")
        finally:
            os.umask(old)
        mode = stat.S_IMODE(os.stat(os.path.join(self.root, "incoming", h.file)).st_mode)
        self.assertEqual(mode, 0o644)

    def test_values_are_written_plain(self):
        big = 2 ** 53 - 1
        args = [None, True, False, 0, -1, big, -big, 1.5, -0.0, 2.0, 1e300, "", "héllo ✓ 🎉", [1, [2]], (3, 4),
                {"k": {"n": [None]}, "": "empty", "ключ": 1}]
        h = self.spool.enqueue("t", *args, encoding="json")
        _, body, data = self.task_file(h)
        self.assertEqual(body["args"], [None, True, False, 0, -1, big, -big, 1.5, 0.0, 2.0, 1e300, "", "héllo ✓ 🎉",
                                        [1, [2]], [3, 4], {"k": {"n": [None]}, "": "empty", "ключ": 1}])
        self.assertNotIn(b"-0.0", data, "-0 is written as 0")
        self.assertEqual(math.copysign(1, body["args"][8]), 1.0)
        data.decode("utf-8")  # UTF-8, no escapes needed

    @needs_msgpack
    def test_msgpack_keeps_bytes_and_integers(self):
        h = self.spool.enqueue("t", b"\x00\xff", 2 ** 40, 2.0, bytearray(b"ab"))
        _, body, _ = self.task_file(h)
        self.assertEqual(body["args"], [b"\x00\xff", 2 ** 40, 2.0, b"ab"])
        self.assertIsInstance(body["args"][1], int)
        self.assertIsInstance(body["args"][2], float)

    def test_enqueue_many(self):
        hs = self.spool.enqueue_many([("a", [1]), ("b", (2, 3), {"priority": 5}), ("c", [])], encoding="json")
        self.assertEqual([h.name for h in hs], ["a", "b", "c"])
        self.assertEqual([self.task_file(h)[1]["args"] for h in hs], [[1], [2, 3], []])
        self.assertEqual([self.task_file(h)[0]["priority"] for h in hs], ["50", "05", "50"])

    def test_fsync(self):
        spool = Spool(self.root, fsync=True)
        with mock.patch.object(spoolerd_kit.os, "fsync", wraps=os.fsync) as fsync:
            h = spool.enqueue("t", 1)
        self.assertEqual(fsync.call_count, 2, "the file, then incoming/")
        self.assertTrue(NAME_RE.match(h.file))
        with mock.patch.object(spoolerd_kit.os, "fsync", wraps=os.fsync) as fsync:
            self.spool.enqueue("t", 1)
        self.assertEqual(fsync.call_count, 0)


class Refusals(SpoolCase):
    def refused(self, error, fn, *needles):
        with self.assertRaises(error) as caught:
            fn()
        for n in needles:
            self.assertIn(n, str(caught.exception))
        self.assertEqual(self.ls("tmp"), [], "a refused task leaves nothing in tmp/")
        self.assertEqual(self.ls("incoming"), [], "nor in incoming/")
        return caught.exception

    def test_bad_names_priorities_and_options(self):
        for name in ["send email", "", "1abc", "a" * 129, "naïve", "a/b", None]:
            self.refused(InvalidOptionError, lambda: self.spool.enqueue(name), "registered")
        self.spool.enqueue("a" * 128)  # the longest name
        os.unlink(os.path.join(self.root, "incoming", self.ls("incoming")[0]))
        for p in [100, -1, 1.0, True, "5"]:
            self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", priority=p), "priority")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", retries=-1), "retries")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", timeout=0), "timeout")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", postpone="30s"), "postpone")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", postpone=math.inf), "postpone")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", encoding="xml"), "encoding")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", unique=""), "unique")
        self.refused(InvalidOptionError, lambda: self.spool.enqueue("t", unique="k", unique_while="x"), "unique_while")

    def test_values_the_format_cannot_carry(self):
        cases = [
            (math.nan, "task.args[0]", "finite"), (math.inf, "task.args[0]", "finite"),
            (2 ** 53, "task.args[0]", "2^53"), (-(2 ** 53), "task.args[0]", "2^53"),
            (len, "task.args[0]", "not a plain value"), ({1, 2}, "task.args[0]", "not a plain value"),
            ({"when": object()}, "task.args[0].when", "not a plain value"),
            ({1: "x"}, "task.args[0]", "not a string"), ("\ud800", "task.args[0]", "surrogate"),
            ({"a\udfff": 1}, "task.args[0]", "surrogate"),
        ]
        for value, path, needle in cases:
            e = self.refused(UnencodableValueError, lambda: self.spool.enqueue("t", "ok", value), needle)
            self.assertEqual(e.path, path.replace("[0]", "[1]", 1))
            self.assertEqual(e.code, "SPOOL_UNENCODABLE")

    def test_nesting_counts_the_body_as_level_one(self):
        deepest = []
        for _ in range(61):  # args (level 2) holding an argument nested 62 deep
            deepest = [deepest]
        os.unlink(os.path.join(self.root, "incoming", self.spool.enqueue("t", deepest, encoding="json").file))
        self.refused(UnencodableValueError, lambda: self.spool.enqueue("t", [deepest]), "64 levels")
        loop = []
        loop.append(loop)
        self.refused(UnencodableValueError, lambda: self.spool.enqueue("t", loop), "64 levels")

    def test_bytes_in_json_and_a_body_over_the_cap(self):
        self.refused(UnencodableValueError, lambda: self.spool.enqueue("t", b"x", encoding="json"), "base64")
        small = Spool(self.root, max_bytes=100)
        small.enqueue("t", "x" * 40)
        os.unlink(os.path.join(self.root, "incoming", self.ls("incoming")[0]))
        self.refused(UnencodableValueError, lambda: small.enqueue("t", "x" * 100), "size cap")


class Clock(SpoolCase):
    """SPOOL-FORMAT.md, "Clocks", foreign producers: the staging file's mtime is now."""

    def with_mtime(self, ns, **options):
        real = os.fstat

        def fstat(fd):
            st = real(fd)
            return mock.Mock(st_mtime_ns=ns, st_mode=st.st_mode, st_size=st.st_size)
        with mock.patch.object(spoolerd_kit.os, "fstat", fstat):
            h = self.spool.enqueue("t", **options)
        fields, _, _ = self.task_file(h)
        return int(h.id[:13]), int(fields["due"])

    def test_the_time_comes_from_the_filesystem_not_this_host(self):
        skewed = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000 + 123_456  # an hour behind, with a fraction
        created, due = self.with_mtime(skewed)
        self.assertEqual(created, skewed // 1_000_000)
        self.assertEqual(due, created)
        created, due = self.with_mtime(skewed, postpone=5)
        self.assertEqual(due, created + 5000 + 10, "a stamp may be a timer tick behind")

    def test_whole_second_filesystems_add_a_second(self):
        created, due = self.with_mtime(1_800_000_000 * 1_000_000_000, postpone=0.2)
        self.assertEqual(created, 1_800_000_000_000)
        self.assertEqual(due, created + 200 + 1010)

    def test_clock_local(self):
        self.spool = Spool(self.root, clock="local")
        created, due = self.with_mtime(1_000_000_000 * 1_000_000_000, postpone=1)
        self.assertGreater(created, 1_700_000_000_000, "the host's clock, not the mtime")
        self.assertEqual(due, created + 1000)
        self.assertRaises(InvalidOptionError, Spool, self.root, clock="ntp")


class JsonOnly(SpoolCase):
    """Without msgpack (the run with SPOOLERD_KIT_NO_MSGPACK=1): JSON by default, MessagePack refused."""

    @unittest.skipIf(HAS_MSGPACK, "msgpack is importable: this runs with SPOOLERD_KIT_NO_MSGPACK=1")
    def test_json_by_default_and_msgpack_refused(self):
        h = self.spool.enqueue("t", 1)
        self.assertTrue(h.file.endswith(".json"))
        self.assertEqual(self.task_file(h)[1], {"version": 1, "type": "fcall", "args": [1]})
        with self.assertRaises(InvalidOptionError) as caught:
            self.spool.enqueue("t", encoding="msgpack")
        self.assertIn("python3-msgpack", str(caught.exception))


if __name__ == "__main__":
    unittest.main()

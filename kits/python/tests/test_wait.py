"""wait(): results/<id>.<encoding> read back (SPOOL-FORMAT.md, "Results"), each ending a value or a typed error."""
import json
import os
import threading
import time
import unittest

from spoolerd_kit import (ResultTimeoutError, ResultValueLostError, SpoolError, TaskCancelledError,
                          TaskExpiredError, TaskFailedError, TaskSkippedError)

from .support import SpoolCase, needs_msgpack

try:
    import msgpack
except ImportError:
    msgpack = None


class Wait(SpoolCase):
    def setUp(self):
        super().setUp()
        os.mkdir(os.path.join(self.root, "results"))

    def record(self, handle, ending, **fields):
        rec = {"version": 1, "id": handle.id, "name": handle.name, "ending": ending, "attempts": 1,
               "owner": "host-1-abcdef", "finishedAt": 1, "keepUntil": 2, **fields}
        path = os.path.join(self.root, "results", f"{handle.id}.{handle.encoding}")
        data = json.dumps(rec).encode() if handle.encoding == "json" else msgpack.packb(rec, use_bin_type=True)
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.rename(path + ".part", path)  # whole, as the daemon renames it in

    def test_a_value(self):
        h = self.spool.enqueue("add", 2, 3, keep_result=60, encoding="json")
        self.record(h, "processed", value={"sum": 5})
        self.assertEqual(self.spool.wait(h, timeout=1), {"sum": 5})
        self.assertEqual(self.spool.wait(h.id, timeout=1), {"sum": 5}, "by id, either encoding")
        self.record(h, "processed")  # returned undefined
        self.assertIsNone(self.spool.wait(h, timeout=1))

    @needs_msgpack
    def test_a_msgpack_value(self):
        h = self.spool.enqueue("add", 2, 3, keep_result=60)
        self.record(h, "processed", value=[b"\x01", 2 ** 40, {"1": "one"}])
        self.assertEqual(self.spool.wait(h, timeout=1), [b"\x01", 2 ** 40, {"1": "one"}])

    def test_a_result_that_comes_later(self):
        h = self.spool.enqueue("add", 2, 3, keep_result=60, encoding="json")
        timer = threading.Timer(0.15, lambda: self.record(h, "processed", value=5))
        timer.start()
        started = time.monotonic()
        self.assertEqual(self.spool.wait(h, timeout=5), 5)
        self.assertGreaterEqual(time.monotonic() - started, 0.1)
        timer.join()

    def test_each_ending_that_is_not_a_value(self):
        h = self.spool.enqueue("t", encoding="json")
        cases = [
            ("dead", {"error": {"name": "TypeError", "message": "boom", "stack": "TypeError: boom"}, "attempts": 4},
             TaskFailedError, "SPOOL_TASK_DEAD", "dead letter after 4 attempt(s): TypeError: boom"),
            ("skipped", {"reason": "nothing to do"}, TaskSkippedError, "SPOOL_TASK_SKIPPED", "skipped: nothing to do"),
            ("cancelled", {}, TaskCancelledError, "SPOOL_TASK_CANCELLED", "was cancelled"),
            ("expired", {"reason": "not started by x"}, TaskExpiredError, "SPOOL_TASK_EXPIRED",
             "expired before it ran: not started by x"),
            ("processed", {"valueError": "a Date"}, ResultValueLostError, "SPOOL_RESULT_VALUE_LOST", "a Date"),
        ]
        for ending, fields, error, code, text in cases:
            self.record(h, ending, **fields)
            with self.assertRaises(error) as caught:
                self.spool.wait(h, timeout=1)
            e = caught.exception
            self.assertEqual((e.code, e.ending, e.record["id"]), (code, ending, h.id))
            self.assertIn(text, str(e))
            self.assertIn(h.id, str(e))

    def test_no_result_in_time(self):
        h = self.spool.enqueue("t", encoding="json")
        started = time.monotonic()
        with self.assertRaises(ResultTimeoutError) as caught:
            self.spool.wait(h, timeout=0.2)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertIsInstance(caught.exception, TimeoutError)
        self.assertIn("keeps no result", str(caught.exception))

    def test_a_record_that_is_a_link_is_not_followed(self):
        h = self.spool.enqueue("t", encoding="json")
        os.symlink("/etc/passwd", os.path.join(self.root, "results", f"{h.id}.json"))
        with self.assertRaises(SpoolError):
            self.spool.wait(h, timeout=1)

    @unittest.skipIf(msgpack is not None, "msgpack is importable: this runs with SPOOLERD_KIT_NO_MSGPACK=1")
    def test_without_msgpack_a_msgpack_record_says_what_to_install(self):
        tid = "1763797190000" + "b" * 16
        with open(os.path.join(self.root, "results", f"{tid}.msgpack"), "wb") as f:
            f.write(b"\x80")
        with self.assertRaises(SpoolError) as caught:
            self.spool.wait(tid, timeout=1)
        self.assertIn("python3-msgpack", str(caught.exception))


if __name__ == "__main__":
    unittest.main()

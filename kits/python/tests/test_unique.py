"""Unique keys (SPOOL-FORMAT.md, "Unique keys"): a key file taken by link(), the holder returned while it holds."""
import errno
import hashlib
import json
import os
import unittest
from unittest import mock

import spoolerd_kit
from spoolerd_kit import BadKeyFileError, NoLinkError

from .support import SpoolCase


def key_hash(name, key):
    return hashlib.sha256(f"{name}\n{key}".encode()).hexdigest()


class UniqueKeys(SpoolCase):
    def key_record(self, name, key):
        with open(os.path.join(self.root, "unique", key_hash(name, key)), "rb") as f:
            return json.loads(f.read())

    def test_the_first_enqueue_takes_the_key_the_next_gets_the_holder(self):
        first = self.spool.enqueue("sendEmail", "a@example.com", unique="a@example.com")
        self.assertFalse(first.existing)
        _, body, _ = self.task_file(first)
        self.assertEqual(body["unique"], "a@example.com")
        self.assertNotIn("uniqueWhile", body)
        self.assertEqual(self.key_record("sendEmail", "a@example.com"),
                         {"version": 1, "id": first.id, "file": first.file, "key": "a@example.com", "while": "pending"})
        again = self.spool.enqueue("sendEmail", "other args", unique="a@example.com", priority=1)
        self.assertTrue(again.existing)
        self.assertEqual((again.id, again.file), (first.id, first.file))
        self.assertEqual(self.ls("incoming"), [first.file], "nothing added")
        self.assertEqual(self.ls("tmp"), [], "the staged task and key are gone")

    def test_keys_are_per_task_name_and_free_again_once_released(self):
        a = self.spool.enqueue("sendEmail", unique="42")
        b = self.spool.enqueue("reindex", unique="42")
        self.assertFalse(b.existing)
        self.assertEqual(len(self.ls("unique")), 2)
        os.unlink(os.path.join(self.root, "unique", key_hash("sendEmail", "42")))  # as a claiming daemon does
        c = self.spool.enqueue("sendEmail", unique="42")
        self.assertFalse(c.existing)
        self.assertNotEqual(c.id, a.id)
        self.assertEqual(len(self.ls("incoming")), 3)

    def test_unique_while_running(self):
        h = self.spool.enqueue("t", unique="k ✓ \"quoted\"", unique_while="running", encoding="json")
        _, body, _ = self.task_file(h)
        self.assertEqual(body["uniqueWhile"], "running")
        self.assertEqual(self.key_record("t", "k ✓ \"quoted\"")["while"], "running")

    def test_sshfs_answers_eperm_for_a_held_key(self):
        held = self.spool.enqueue("t", unique="k")
        real_link = os.link

        def sshfs_link(src, dst):
            if os.path.lexists(dst):
                raise PermissionError(errno.EPERM, "Operation not permitted")
            return real_link(src, dst)
        with mock.patch.object(spoolerd_kit.os, "link", sshfs_link):
            again = self.spool.enqueue("t", unique="k")
            self.assertTrue(again.existing)
            self.assertEqual(again.id, held.id)
            fresh = self.spool.enqueue("t", unique="other")
            self.assertFalse(fresh.existing)
        self.assertEqual(self.ls("tmp"), [])

    def test_a_filesystem_without_links(self):
        def no_link(src, dst):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        with mock.patch.object(spoolerd_kit.os, "link", no_link):
            with self.assertRaises(NoLinkError) as caught:
                self.spool.enqueue("t", unique="k")
        self.assertIn("hard links", str(caught.exception))
        self.assertEqual((self.ls("tmp"), self.ls("incoming")), ([], []))

    def test_a_key_file_that_is_not_one(self):
        os.makedirs(os.path.join(self.root, "unique"))
        os.symlink("/etc/passwd", os.path.join(self.root, "unique", key_hash("t", "link")))
        with open(os.path.join(self.root, "unique", key_hash("t", "junk")), "w") as f:
            f.write('{"version": 1, "id": "nope"}')
        for key in ("link", "junk"):
            with self.assertRaises(BadKeyFileError) as caught:
                self.spool.enqueue("t", unique=key)
            self.assertIn("not a valid key file", str(caught.exception))
        self.assertEqual((self.ls("tmp"), self.ls("incoming")), ([], []))

    def test_a_key_lost_before_the_task_was_in_starts_over(self):
        """Step 6: the sweep released the key of a stalled producer and another task took it."""
        other = {"version": 1, "id": "1763797190000" + "a" * 16, "file": "50-1763797190000-1763797190000"
                 + "a" * 16 + "-a0-t.json", "key": "k", "while": "pending"}
        real_rename = os.rename

        def stalled_rename(src, dst):
            if os.path.dirname(dst).endswith("incoming"):
                key = os.path.join(self.root, "unique", key_hash("t", "k"))
                os.unlink(key)
                with open(key, "w") as f:
                    json.dump(other, f)
            return real_rename(src, dst)
        with mock.patch.object(spoolerd_kit.os, "rename", stalled_rename):
            h = self.spool.enqueue("t", unique="k")
        self.assertTrue(h.existing, "the second try finds the key held by the other task")
        self.assertEqual(h.id, other["id"])
        self.assertEqual((self.ls("tmp"), self.ls("incoming")), ([], []), "the task was taken back out")

    def test_a_failed_enqueue_gives_its_key_back(self):
        real_rename = os.rename

        def failing_rename(src, dst):
            if os.path.dirname(dst).endswith("incoming"):
                raise OSError(errno.EIO, "Input/output error")
            return real_rename(src, dst)
        with mock.patch.object(spoolerd_kit.os, "rename", failing_rename):
            with self.assertRaises(OSError):
                self.spool.enqueue("t", unique="k")
        self.assertEqual((self.ls("tmp"), self.ls("incoming"), self.ls("unique")), ([], [], []))
        self.assertFalse(self.spool.enqueue("t", unique="k").existing)


if __name__ == "__main__":
    unittest.main()

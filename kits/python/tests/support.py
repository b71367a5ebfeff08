"""What the tests share: a temp spool, the file name rule of SPOOL-FORMAT.md, and a decoder of task files."""
import json
import os
import re
import shutil
import tempfile
import unittest

import spoolerd_kit

try:
    import msgpack
except ImportError:
    msgpack = None

# SPOOL-FORMAT.md, "File name": the one regular expression of a valid name.
NAME_RE = re.compile(r"^(\d{2})-(\d{13})-(\d{13}[0-9a-f]{16})-a(0|[1-9]\d{0,5})-([A-Za-z_][A-Za-z0-9_.:-]{0,127})"
                     r"\.(msgpack|json)$")
HAS_MSGPACK = spoolerd_kit.msgpack is not None
needs_msgpack = unittest.skipUnless(HAS_MSGPACK, "msgpack is hidden (SPOOLERD_KIT_NO_MSGPACK=1): the JSON-only run")


class SpoolCase(unittest.TestCase):
    """A fresh spool directory (not created: the kit makes tmp/ and incoming/) per test."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="spoolerd-kit-")
        self.root = os.path.join(self.dir, "spool")
        os.mkdir(self.root)
        self.spool = spoolerd_kit.Spool(self.root)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def ls(self, sub):
        path = os.path.join(self.root, sub)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def task_file(self, handle):
        """The parsed name and decoded body of the handle's file in incoming/."""
        m = NAME_RE.match(handle.file)
        self.assertIsNotNone(m, f"{handle.file} is not a valid task file name")
        with open(os.path.join(self.root, "incoming", handle.file), "rb") as f:
            data = f.read()
        body = json.loads(data.decode("utf-8")) if handle.file.endswith(".json") else \
            msgpack.unpackb(data, raw=False)
        fields = dict(zip(("priority", "due", "id", "attempts", "name", "encoding"), m.groups()))
        return fields, body, data

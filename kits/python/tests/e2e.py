"""The producer side of spoolerd's test/kit-python.test.ts, which serves the spool with a real spoolerd
(task modules test/fixtures/tasks/basic.mjs and results.mjs) and checks what ran, when and in which order.

  e2e.py prefill <spool>   before the daemon starts: mixed priorities, postpones, unique keys, results to come
  e2e.py json <spool>      the same kit with msgpack unavailable (run with SPOOLERD_KIT_NO_MSGPACK=1)
  e2e.py finish <spool> <prefill output file>   with the daemon serving: results read back, a released key taken

Each prints one JSON object. Not named test_*: unittest's discovery leaves it alone.
"""
import hashlib
import json
import os
import sys
import time

if os.environ.get("SPOOLERD_KIT_NO_MSGPACK") == "1":
    sys.modules["msgpack"] = None

import spoolerd_kit  # noqa: E402
from spoolerd_kit import ResultTimeoutError, Spool, TaskFailedError, TaskSkippedError  # noqa: E402


def handle(h):
    return {"id": h.id, "file": h.file, "existing": h.existing}


def prefill(spool):
    out = {}
    echo = [("p50-a", {}), ("p10-json", {"priority": 10, "encoding": "json"}), ("p90", {"priority": 90}),
            ("p0", {"priority": 0, "encoding": "json"}), ("p50-b", {}),
            # due after everything else has run (the daemon is not started yet, and 1.5 s is ample for it)
            ("p10-later", {"priority": 10, "postpone": 1.5}), ("p0-later", {"priority": 0, "postpone": 1.7}),
            ("u-first", {"priority": 30, "unique": "k1"}), ("u-dup", {"priority": 30, "unique": "k1"})]
    for label, options in echo:
        out[label] = handle(spool.enqueue("echo", label, **options))
    # The same key under another task name is another key.
    out["async-k1"] = handle(spool.enqueue("async_echo", "async-k1", unique="k1", priority=30))
    for label, h in zip(["many-1", "many-2"], spool.enqueue_many([("echo", ["many-1"]),
                                                                   ("echo", ["many-2"], {"priority": 20})])):
        out[label] = handle(h)
    out["add"] = handle(spool.enqueue("add", 2, 3, keep_result=60, priority=60))
    out["fail"] = handle(spool.enqueue("fail_hard", "boom", retries=0, keep_result=60, priority=60, encoding="json"))
    out["skip"] = handle(spool.enqueue("skip_it", "no need", keep_result=60, priority=60))
    return out


def finish(spool, prefilled):
    result = {}
    handles = {k: spoolerd_kit.TaskHandle(v["id"], k, v["file"], v["existing"]) for k, v in prefilled.items()}
    result["add"] = spool.wait(handles["add"], timeout=20)
    try:
        spool.wait(handles["fail"], timeout=20)
    except TaskFailedError as e:
        result["fail"] = {"error": type(e).__name__, "code": e.code, "remote": e.record["error"]["name"],
                          "message": e.record["error"]["message"]}
    try:
        spool.wait(handles["skip"].id, timeout=20)  # by id alone
    except TaskSkippedError as e:
        result["skip"] = {"error": type(e).__name__, "reason": e.record["reason"]}
    try:
        spool.wait(handles["p0"], timeout=0.2)
    except ResultTimeoutError as e:
        result["noResult"] = e.code
    # The claim of u-first releases its key ("pending"): then the key can be taken again.
    key = os.path.join(spool.root, "unique", hashlib.sha256(b"echo\nk1").hexdigest())
    deadline = time.monotonic() + 20
    while os.path.lexists(key) and time.monotonic() < deadline:
        time.sleep(0.02)
    result["u-again"] = handle(spool.enqueue("echo", "u-again", unique="k1"))
    return result


def main():
    mode, root = sys.argv[1], sys.argv[2]
    spool = Spool(root)
    if mode == "prefill":
        out = prefill(spool)
    elif mode == "json":
        out = {"json-default": handle(spool.enqueue("echo", "json-default", priority=40)),
               "kit": spoolerd_kit.__file__, "msgpack": spoolerd_kit.msgpack is not None}
    else:
        with open(sys.argv[3]) as f:
            out = finish(spool, json.load(f))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Tests of spoolerd_kit. With SPOOLERD_KIT_NO_MSGPACK=1 the msgpack module is hidden (its import fails),
so the whole suite runs the kit's JSON-only path; tests that need MessagePack skip there, saying so."""
import os
import sys

if os.environ.get("SPOOLERD_KIT_NO_MSGPACK") == "1":
    sys.modules["msgpack"] = None  # `import msgpack` raises ImportError

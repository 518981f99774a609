"""Part two of the kill -9 durability test: every request id given (one per
line on stdin) must end in a successful invocation record after the
restart."""

import sys
import time

from mayfly_test import invocations

ids = [line.strip() for line in sys.stdin if line.strip()]
assert ids, "no request ids given"
deadline = time.time() + 60
while True:
    done = {r["requestId"] for r in invocations("durable", limit=1000) if r["status"] == "success"}
    missing = [i for i in ids if i not in done]
    if not missing:
        print(f"all {len(ids)} accepted events were processed")
        break
    if time.time() > deadline:
        raise AssertionError(f"{len(missing)} of {len(ids)} accepted events never succeeded: {missing}")
    time.sleep(0.25)

"""Part one of the kill -9 durability test: accepts N events for a slow-ish
function and prints each accepted request id, one per line, as soon as its
202 arrives. The Rust test kills the server mid-way (tests/e2e/restart.rs)."""

import json
import sys

from mayfly_test import client, create

n = int(sys.argv[1])
lam = client()
create(lam, "durable", "misbehave", Timeout=3)
for i in range(n):
    resp = lam.invoke(FunctionName="durable", InvocationType="Event", Payload=json.dumps({"mode": "state", "i": i}))
    assert resp["StatusCode"] == 202, resp
    print(resp["ResponseMetadata"]["RequestId"], flush=True)

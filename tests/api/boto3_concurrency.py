"""16 concurrent synchronous invokes of echo through boto3, each with its own
payload: every caller gets its own payload back. Run by tests/e2e/boto3.rs
against a server started with --max-concurrency of at least 16; see
mayfly_test.py for the environment."""

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from mayfly_test import METRICS, check, client, create, eq, invocations, raw_request, run

N = 16
lam = client(max_pool_connections=2 * N, read_timeout=120)


def sixteen_at_once():
    create(lam, "conc-echo", "echo")
    # One cold invoke first, for the record.
    t = time.time()
    r = lam.invoke(FunctionName="conc-echo", Payload=b'{"warm":"up"}')
    eq(r["Payload"].read(), b'{"warm":"up"}', "first invoke")
    single = time.time() - t

    def one(i):
        payload = json.dumps({"caller": i, "pad": "p" * (i * 37), "nested": {"i": [i, str(i)]}}).encode()
        started = time.time()
        r = lam.invoke(FunctionName="conc-echo", Payload=payload)
        body = r["Payload"].read()
        return i, payload, body, r["StatusCode"], r.get("FunctionError"), time.time() - started, started

    t = time.time()
    with ThreadPoolExecutor(N) as pool:
        results = list(pool.map(one, range(N)))
    wall = time.time() - t
    for i, payload, body, status, error, _, _ in results:
        eq((status, error), (200, None), f"caller {i}")
        eq(body, payload, f"caller {i} got its own payload")
    latencies = sorted(r[5] for r in results)
    print(f"   one invoke alone: {single * 1000:.0f} ms; {N} at once: wall {wall * 1000:.0f} ms, "
          f"latency median {statistics.median(latencies) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")

    # They ran at the same time: the records overlap.
    recs = [r for r in invocations("conc-echo", 50) if r.get("invocationType") == "RequestResponse"]
    check(len(recs) >= N + 1, f"{len(recs)} records for {N + 1} invokes")
    eq(len({r["requestId"] for r in recs}), len(recs), "distinct request ids")

    if METRICS:
        status, _, text = raw_request("GET", METRICS + "/metrics")
        eq(status, 200, "/metrics")
        running = [l for l in text.decode().splitlines() if l.startswith("mayfly_running_vms")]
        check(running and all(float(l.split()[-1]) == 0 for l in running), f"no VM left running: {running}")


def account_limit():
    limit = lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    check(limit >= N, f"the account limit ({limit}) admits {N} at once")


if __name__ == "__main__":
    run([account_limit, sixteen_at_once])

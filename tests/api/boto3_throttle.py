"""Concurrency limits at `mayfly serve` (started with --max-concurrency 4):
20 simultaneous invokes of a function with reserved concurrency 2 get some
429s at once (ReservedFunctionConcurrentInvocationLimitExceeded) and every
accepted one returns its own payload; the unreserved pool (4 - 2 = 2)
throttles with ConcurrentInvocationLimitExceeded. Run by
tests/e2e/concurrency.rs; see mayfly_test.py for the environment."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from mayfly_test import check, client, create, eq, invocations, run

lam = client(max_pool_connections=32)


def burst(name, n=20):
    """n simultaneous invokes; returns [(i, outcome, detail, seconds)]."""
    def one(i):
        started = time.time()
        try:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps({"i": i}))
            return i, "ok", json.loads(resp["Payload"].read()), time.time() - started
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            reason = e.response.get("Reason") or e.response.get("Error", {}).get("Reason")
            return i, e.response["Error"]["Code"], (status, reason), time.time() - started

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def setup():
    create(lam, "reserved2", "echo")
    create(lam, "unreserved", "echo")
    lam.put_function_concurrency(FunctionName="reserved2", ReservedConcurrentExecutions=2)
    settings = lam.get_account_settings()["AccountLimit"]
    eq((settings["ConcurrentExecutions"], settings["UnreservedConcurrentExecutions"]), (4, 2), "account limits")


def reserved_concurrency_throttles_at_once():
    results = burst("reserved2")
    ok = [r for r in results if r[1] == "ok"]
    throttled = [r for r in results if r[1] == "TooManyRequestsException"]
    eq(len(ok) + len(throttled), 20, f"every invoke either ran or was throttled: {results}")
    check(ok, f"some were accepted: {results}")
    check(throttled, f"some were throttled: {results}")
    for i, _, payload, _ in ok:
        eq(payload, {"i": i}, "an accepted invoke returns its own payload")
    for _, _, (status, reason), seconds in throttled:
        eq((status, reason), (429, "ReservedFunctionConcurrentInvocationLimitExceeded"), "throttle")
        check(seconds < 2.0, f"a throttle answers at once, not after {seconds:.2f} s")
    statuses = [r["status"] for r in invocations("reserved2", limit=100)]
    eq(statuses.count("throttled"), len(throttled), "each throttle is recorded")
    eq(statuses.count("success"), len(ok), "each accepted invoke is recorded")


def unreserved_pool_throttles_too():
    results = burst("unreserved", n=12)
    throttled = [r for r in results if r[1] == "TooManyRequestsException"]
    check(throttled, f"the unreserved pool of 2 throttles a burst of 12: {results}")
    for _, _, (status, reason), _ in throttled:
        eq((status, reason), (429, "ConcurrentInvocationLimitExceeded"), "account throttle")
    for i, outcome, payload, _ in results:
        if outcome == "ok":
            eq(payload, {"i": i}, "own payload")


def zero_reserved_always_throttles():
    lam.put_function_concurrency(FunctionName="reserved2", ReservedConcurrentExecutions=0)
    for _ in range(3):
        try:
            lam.invoke(FunctionName="reserved2", Payload=b"{}")
            raise AssertionError("an invoke with reserved concurrency 0 ran")
        except ClientError as e:
            eq(e.response["Error"]["Code"], "TooManyRequestsException", "code")
    lam.delete_function_concurrency(FunctionName="reserved2")
    resp = lam.invoke(FunctionName="reserved2", Payload=b'{"again":1}')
    eq(json.loads(resp["Payload"].read()), {"again": 1}, "runs again once the reservation is gone")


run([setup, reserved_concurrency_throttles_at_once, unreserved_pool_throttles_too, zero_reserved_always_throttles])

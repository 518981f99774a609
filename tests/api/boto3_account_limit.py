"""The host-wide limit (--max-concurrency, Lambda's account concurrency):
beyond it, Invoke answers 429 TooManyRequestsException with Reason
ConcurrentInvocationLimitExceeded. Run by tests/e2e/boto3.rs against a server
started with --max-concurrency 2; see mayfly_test.py for the environment."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from mayfly_test import check, client, create, eq, invoke_json, run

LIMIT = 2
lam = client()


def account_settings():
    acct = lam.get_account_settings()["AccountLimit"]
    eq(acct["ConcurrentExecutions"], LIMIT, "ConcurrentExecutions is --max-concurrency")
    eq(acct["UnreservedConcurrentExecutions"], LIMIT, "UnreservedConcurrentExecutions")


def beyond_the_limit():
    create(lam, "acct-slow", "misbehave", Timeout=2)
    slow = client(read_timeout=30, max_pool_connections=8)
    n = LIMIT + 1
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        try:
            r = slow.invoke(FunctionName="acct-slow", Payload=b'{"mode":"loop"}')
            return ("ran", json.loads(r["Payload"].read()).get("errorType"))
        except slow.exceptions.TooManyRequestsException as e:
            return ("throttled", e.response.get("Reason"), e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    eq(sorted(results), [("ran", "Sandbox.Timedout")] * LIMIT
       + [("throttled", "ConcurrentInvocationLimitExceeded", 429)], f"{n} at once with a limit of {LIMIT}")
    # Capacity is back afterwards.
    create(lam, "acct-echo", "echo")
    _, out = invoke_json(lam, "acct-echo", {"after": 1})
    eq(out, {"after": 1}, "invoke after the throttle")


if __name__ == "__main__":
    run([account_settings, beyond_the_limit])

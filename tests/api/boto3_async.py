"""Asynchronous invocations at `mayfly serve`: event-invoke configurations,
retries on function error, and invocation records delivered to OnSuccess
and OnFailure destinations. The server runs with a short retry delay
(--retry-base-delay-ms). Run by tests/e2e/async_events.rs; see mayfly_test.py for
the environment."""

import json

from mayfly_test import (
    check, client, create, eq, expect_error, function_arn, invocations, run, wait_for_invocation,
)

lam = client()
SINK = "async-sink"


def setup():
    create(lam, "async-echo", "echo")
    create(lam, "async-bad", "misbehave")
    create(lam, SINK, "recorder")


def records_in_sink(request_id):
    """The invocation records the sink received for `request_id`."""
    found = []
    for r in invocations(SINK, limit=200):
        for line in r["log"].splitlines():
            if line.startswith("event: ") and request_id in line:
                found.append(json.loads(line[len("event: "):]))
    return found


def wait_for_sink(request_id, within=20):
    wait_for_invocation(SINK, lambda r: request_id in r["log"], within=within)
    records = records_in_sink(request_id)
    eq(len(records), 1, f"records for {request_id} in the sink")
    return records[0]


def config_lifecycle():
    sink = function_arn(SINK)
    put = lam.put_function_event_invoke_config(
        FunctionName="async-echo", MaximumRetryAttempts=1,
        DestinationConfig={"OnSuccess": {"Destination": sink}},
    )
    eq(put["FunctionArn"], function_arn("async-echo", "$LATEST"), "FunctionArn")
    eq(put["MaximumRetryAttempts"], 1, "MaximumRetryAttempts")
    eq(put["DestinationConfig"]["OnSuccess"]["Destination"], sink, "OnSuccess")
    check(put["LastModified"].year >= 2024, f"LastModified: {put['LastModified']}")
    updated = lam.update_function_event_invoke_config(FunctionName="async-echo", MaximumEventAgeInSeconds=600)
    eq((updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]), (1, 600), "merged update")
    eq(updated["DestinationConfig"]["OnSuccess"]["Destination"], sink, "destination kept by update")
    got = lam.get_function_event_invoke_config(FunctionName="async-echo")
    eq(got["MaximumEventAgeInSeconds"], 600, "get")
    listed = lam.list_function_event_invoke_configs(FunctionName="async-echo")["FunctionEventInvokeConfigs"]
    eq(len(listed), 1, "list")
    expect_error(["ValidationException", "InvalidParameterValueException"], 400,
                 lam.put_function_event_invoke_config, FunctionName="async-echo", MaximumRetryAttempts=3)
    expect_error("InvalidParameterValueException", 400, lam.put_function_event_invoke_config,
                 FunctionName="async-echo",
                 DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}})
    expect_error("InvalidParameterValueException", 400, lam.put_function_event_invoke_config,
                 FunctionName="async-echo",
                 DestinationConfig={"OnFailure": {"Destination": function_arn("no-such-function")}})
    expect_error("ResourceNotFoundException", 404, lam.get_function_event_invoke_config, FunctionName="async-bad")


def success_goes_to_on_success():
    resp = lam.invoke(FunctionName="async-echo", InvocationType="Event", Payload=json.dumps({"n": 1}))
    eq(resp["StatusCode"], 202, "Event answers 202")
    eq(resp["Payload"].read(), b"", "empty body")
    request_id = resp["ResponseMetadata"]["RequestId"]
    record = wait_for_sink(request_id)
    ctx = record["requestContext"]
    eq(record["version"], "1.0", "record version")
    eq(ctx["requestId"], request_id, "requestId")
    eq(ctx["condition"], "Success", "condition")
    eq(ctx["approximateInvokeCount"], 1, "approximateInvokeCount")
    eq(ctx["functionArn"], function_arn("async-echo", "$LATEST"), "functionArn")
    eq(record["requestPayload"], {"n": 1}, "requestPayload")
    eq(record["responsePayload"], {"n": 1}, "responsePayload")
    eq(record["responseContext"]["statusCode"], 200, "responseContext.statusCode")
    check("functionError" not in record["responseContext"], f"no functionError: {record}")
    check(record["timestamp"].endswith("Z"), f"timestamp: {record['timestamp']}")


def failure_is_retried_then_goes_to_on_failure():
    lam.put_function_event_invoke_config(
        FunctionName="async-bad", MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": function_arn(SINK)}},
    )
    resp = lam.invoke(FunctionName="async-bad", InvocationType="Event", Payload=json.dumps({"mode": "error"}))
    eq(resp["StatusCode"], 202, "Event answers 202")
    request_id = resp["ResponseMetadata"]["RequestId"]
    record = wait_for_sink(request_id)
    runs = [r for r in invocations("async-bad", limit=50) if r["requestId"] == request_id]
    print(f"   runs: {[(r['status'], r['startedAt']) for r in runs]}; record: {record['requestContext']}")
    eq(record["requestContext"]["condition"], "RetriesExhausted", "condition")
    eq(record["requestContext"]["approximateInvokeCount"], 2, "one try and one retry")
    eq(record["requestPayload"], {"mode": "error"}, "requestPayload")
    eq(record["responseContext"]["functionError"], "Unhandled", "functionError")
    eq(record["responsePayload"]["errorType"], "MisbehaveError", "responsePayload")
    runs = [r for r in invocations("async-bad", limit=50) if r["requestId"] == request_id]
    eq(len(runs), 2, f"two runs with the same request id: {runs}")
    check(all(r["status"] == "error" and r["invocationType"] == "Event" for r in runs), f"{runs}")


def retries_default_to_two():
    lam.delete_function_event_invoke_config(FunctionName="async-bad")
    resp = lam.invoke(FunctionName="async-bad", InvocationType="Event", Payload=json.dumps({"mode": "panic"}))
    request_id = resp["ResponseMetadata"]["RequestId"]
    # Delays 0.3 s then 0.6 s with the test server's base delay.
    deadline_runs = 3

    def three(r):
        return len([x for x in invocations("async-bad", limit=100) if x["requestId"] == request_id]) == deadline_runs

    wait_for_invocation("async-bad", lambda r: r["requestId"] == request_id and three(r), within=30)
    runs = [x for x in invocations("async-bad", limit=100) if x["requestId"] == request_id]
    check(all(r["errorType"] == "Runtime.Panic" for r in runs), f"{runs}")
    check(not records_in_sink(request_id), "no destination when none is configured")


run([setup, config_lifecycle, success_goes_to_on_success, failure_is_retried_then_goes_to_on_failure,
     retries_default_to_two])

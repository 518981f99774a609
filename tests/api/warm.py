"""Provisioned concurrency end to end, driven by boto3 (run by tests/e2e/warm.rs).

Environment: MAYFLY_ENDPOINT, MAYFLY_ACCESS_KEY_ID, MAYFLY_SECRET_ACCESS_KEY,
MAYFLY_IMAGES (target/images), MAYFLY_DATA_DIR (see mayfly_test.py). Prints `LATENCY cold_p50_ms=... warm_p50_ms=...`
and ends with `WARM OK` after deleting the configuration; the Rust test then
checks that no QEMU of the pool is left.
"""

import base64
import json
import os
import statistics
import time

from botocore.exceptions import ClientError

from mayfly_test import client, create

FUNCTION = "warm-echo"


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError("expected an error, the call succeeded")


def wait_for(lam, qualifier, allocated, within=60):
    deadline = time.time() + within
    while True:
        c = lam.get_provisioned_concurrency_config(FunctionName=FUNCTION, Qualifier=qualifier)
        if c["Status"] == "READY" and c["AllocatedProvisionedConcurrentExecutions"] == allocated:
            return c
        assert c["Status"] != "FAILED", c
        assert time.time() < deadline, f"not READY with {allocated} allocated within {within}s: {c}"
        time.sleep(0.1)


def qemus():
    """Live QEMU processes of this server (their command line names its data directory)."""
    needle = os.environ["MAYFLY_DATA_DIR"]
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmdline and needle in cmdline:
            found.append(int(pid))
    return found


def wait_no_qemu(within=5):
    deadline = time.time() + within
    while qemus():
        assert time.time() < deadline, f"QEMU left running: {qemus()}"
        time.sleep(0.05)


def invoke(lam, payload, qualifier=None):
    args = dict(FunctionName=FUNCTION, Payload=json.dumps(payload).encode(), LogType="Tail")
    if qualifier:
        args["Qualifier"] = qualifier
    started = time.perf_counter()
    r = lam.invoke(**args)
    elapsed_ms = (time.perf_counter() - started) * 1000
    body = json.loads(r["Payload"].read())
    assert body == payload, f"echo answered {body!r} to {payload!r}"
    assert "FunctionError" not in r, r
    log = base64.b64decode(r["LogResult"]).decode()
    report = [line for line in log.splitlines() if line.startswith("REPORT ")]
    assert len(report) == 1, log
    return report[0], elapsed_ms, r


def main():
    lam = client()
    create(lam, FUNCTION)
    assert lam.publish_version(FunctionName=FUNCTION)["Version"] == "1"

    # Only published versions and aliases; the function must exist.
    code, message = error_code(lambda: lam.put_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1))
    assert code == "InvalidParameterValueException", code
    assert "unpublished function versions" in message, message
    code, _ = error_code(lambda: lam.put_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="7", ProvisionedConcurrentExecutions=1))
    assert code == "ResourceNotFoundException", code
    code, _ = error_code(lambda: lam.put_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="1", ProvisionedConcurrentExecutions=9))
    assert code == "InvalidParameterValueException", code  # over --max-concurrency 8
    code, _ = error_code(lambda: lam.get_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="1"))
    assert code == "ProvisionedConcurrencyConfigNotFoundException", code

    put = lam.put_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="1", ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202, put
    assert put["RequestedProvisionedConcurrentExecutions"] == 2, put
    assert put["Status"] == "IN_PROGRESS", put
    assert "LastModified" in put and "AllocatedProvisionedConcurrentExecutions" in put, put
    ready = wait_for(lam, "1", 2)
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2, ready

    listed = lam.list_provisioned_concurrency_configs(FunctionName=FUNCTION)["ProvisionedConcurrencyConfigs"]
    assert len(listed) == 1, listed
    assert listed[0]["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION}:1", listed
    assert listed[0]["RequestedProvisionedConcurrentExecutions"] == 2, listed
    assert listed[0]["Status"] == "READY", listed

    # An alias's pool goes with the alias.
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="live", ProvisionedConcurrentExecutions=1)
    wait_for(lam, "live", 1)
    assert len(qemus()) == 3, qemus()
    report, _, _ = invoke(lam, {"via": "alias"}, qualifier="live")
    assert "Init Duration" not in report, report
    wait_for(lam, "live", 1)
    lam.delete_alias(FunctionName=FUNCTION, Name="live")
    deadline = time.time() + 10
    while len(qemus()) > 2:
        assert time.time() < deadline, f"the alias's warm VM outlived the alias: {qemus()}"
        time.sleep(0.05)

    # Warm: no Init Duration, the right answer, the executed version.
    report, _, r = invoke(lam, {"warm": 1}, qualifier="1")
    assert "Init Duration" not in report, report
    assert r["ExecutedVersion"] == "1", r
    # Cold ($LATEST has no pool): Init Duration.
    report, _, _ = invoke(lam, {"cold": 1})
    assert "Init Duration" in report, report

    # The pool refills.
    wait_for(lam, "1", 2)

    # Latency, warm against cold (printed, not asserted).
    warm, cold = [], []
    for i in range(10):
        wait_for(lam, "1", 2)
        report, ms, _ = invoke(lam, {"i": i}, qualifier="1")
        assert "Init Duration" not in report, report
        warm.append(ms)
    for i in range(10):
        report, ms, _ = invoke(lam, {"i": i})
        assert "Init Duration" in report, report
        cold.append(ms)
    print(f"LATENCY cold_p50_ms={statistics.median(cold):.1f} warm_p50_ms={statistics.median(warm):.1f} "
          f"cold_min_ms={min(cold):.1f} warm_min_ms={min(warm):.1f}", flush=True)

    # Back to back: both warm VMs serve, one event each.
    wait_for(lam, "1", 2)
    reports = [invoke(lam, {"burst": i}, qualifier="1")[0] for i in range(2)]
    assert all("Init Duration" not in r for r in reports), reports

    # Resize, then delete.
    lam.put_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="1", ProvisionedConcurrentExecutions=1)
    wait_for(lam, "1", 1)
    # A reservation cannot shrink below the warm VMs it holds.
    code, _ = error_code(lambda: lam.put_function_concurrency(
        FunctionName=FUNCTION, ReservedConcurrentExecutions=0))
    assert code == "InvalidParameterValueException", code
    lam.delete_provisioned_concurrency_config(FunctionName=FUNCTION, Qualifier="1")
    code, _ = error_code(lambda: lam.get_provisioned_concurrency_config(
        FunctionName=FUNCTION, Qualifier="1"))
    assert code == "ProvisionedConcurrencyConfigNotFoundException", code
    wait_no_qemu()
    report, _, _ = invoke(lam, {"after": "delete"}, qualifier="1")
    assert "Init Duration" in report, report
    wait_no_qemu()
    print("WARM OK", flush=True)


if __name__ == "__main__":
    main()

"""boto3 against `mayfly serve`: create, get, list (paginated), update,
delete; versions and aliases; every kind of invoke; reserved concurrency and
throttling. Run by tests/e2e/boto3.rs; see mayfly_test.py for the
environment."""

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from mayfly_test import (
    check, client, code_sha256, create, eq, expect_error, function_arn, invocations, invoke_json,
    list_all_function_names, package, run, wait_for_invocation, ROLE, RUNTIME, METRICS,
)

lam = client()
ECHO = package("echo")
HELLO = package("hello")


def crud():
    c = create(lam, "b3-crud", "echo", Description="crud")
    eq(c["ResponseMetadata"]["HTTPStatusCode"], 201, "CreateFunction status")
    eq(c["FunctionName"], "b3-crud", "FunctionName")
    eq(c["FunctionArn"], function_arn("b3-crud"), "FunctionArn")
    eq(c["Runtime"], RUNTIME, "Runtime")
    eq(c["Role"], ROLE, "Role")
    eq(c["Handler"], "bootstrap", "Handler")
    eq(c["MemorySize"], 128, "default MemorySize")
    eq(c["Timeout"], 3, "default Timeout")
    eq(c["CodeSha256"], code_sha256(ECHO), "CodeSha256")
    eq(c["CodeSize"], len(ECHO), "CodeSize")
    eq(c["Version"], "$LATEST", "Version")
    eq(c["State"], "Active", "State")
    eq(c["Description"], "crud", "Description")
    check(c.get("RevisionId"), f"RevisionId: {c}")
    check(c.get("LastModified"), f"LastModified: {c}")

    expect_error("ResourceConflictException", 409, create, lam, "b3-crud", "hello")

    g = lam.get_function(FunctionName="b3-crud")
    eq(g["Configuration"]["CodeSha256"], code_sha256(ECHO), "GetFunction CodeSha256")
    check("Code" in g, f"GetFunction has Code: {g}")
    gc = lam.get_function_configuration(FunctionName=function_arn("b3-crud"))
    eq(gc["RevisionId"], c["RevisionId"], "RevisionId unchanged")

    u = lam.update_function_code(FunctionName="b3-crud", ZipFile=HELLO)
    eq(u["CodeSha256"], code_sha256(HELLO), "new CodeSha256")
    eq(u["CodeSize"], len(HELLO), "new CodeSize")
    check(u["RevisionId"] != c["RevisionId"], "RevisionId changes with the code")

    # A stale RevisionId is refused.
    expect_error("PreconditionFailedException", 412, lam.update_function_configuration,
                 FunctionName="b3-crud", Timeout=9, RevisionId=c["RevisionId"])
    u = lam.update_function_configuration(FunctionName="b3-crud", MemorySize=512, Timeout=10,
                                          Environment={"Variables": {"GREETING": "Hey"}}, RevisionId=u["RevisionId"])
    eq(u["MemorySize"], 512, "MemorySize")
    eq(u["Timeout"], 10, "Timeout")
    eq(u["Environment"]["Variables"], {"GREETING": "Hey"}, "Environment")
    eq(u["CodeSha256"], code_sha256(HELLO), "config update keeps the code")
    _, out = invoke_json(lam, "b3-crud", {"name": "Ada"})
    eq(out, {"message": "Hey, Ada!"}, "updated function's answer")
    # Environment removed: the default greeting.
    lam.update_function_configuration(FunctionName="b3-crud", Environment={"Variables": {}})
    _, out = invoke_json(lam, "b3-crud", {"name": "Ada"})
    eq(out, {"message": "Hello, Ada!"}, "default greeting")

    d = lam.delete_function(FunctionName="b3-crud")
    eq(d["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteFunction status")
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="b3-crud")
    expect_error("ResourceNotFoundException", 404, lam.delete_function, FunctionName="b3-crud")
    expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="b3-crud")
    check("b3-crud" not in list_all_function_names(lam), "deleted function is not listed")


def pagination():
    names = [f"b3-page-{i:02}" for i in range(53)]
    for n in names:
        create(lam, n, "echo")

    # MaxItems=2, following NextMarker.
    seen, marker, pages = [], None, 0
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_functions(MaxItems=2, **kw)
        pages += 1
        check(len(page["Functions"]) <= 2, f"page of {len(page['Functions'])} with MaxItems=2")
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
        check(pages < 100, "pagination does not end")
    mine = [n for n in seen if n.startswith("b3-page-")]
    eq(sorted(mine), names, "every function once, in MaxItems=2 pages")
    eq(len(seen), len(set(seen)), "no function twice")

    # At most 50 a page, whatever MaxItems says.
    page = lam.list_functions()
    check(len(page["Functions"]) <= 50, f"default page has {len(page['Functions'])} functions")
    check(page.get("NextMarker"), "53 functions do not fit one page: NextMarker expected")
    page = lam.list_functions(MaxItems=1000)
    eq(len(page["Functions"]), 50, "MaxItems=1000 is capped at 50")
    check(page.get("NextMarker"), "NextMarker after a capped page")

    # boto3's paginator.
    got = []
    for p in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 7}):
        got += [f["FunctionName"] for f in p["Functions"]]
    eq(sorted(n for n in got if n.startswith("b3-page-")), names, "paginator")

    for n in names:
        lam.delete_function(FunctionName=n)
    check(not [n for n in list_all_function_names(lam) if n.startswith("b3-page-")], "all deleted")


def versions_and_aliases():
    create(lam, "b3-ver", "hello", Environment={"Variables": {"GREETING": "Hi"}})
    v1 = lam.publish_version(FunctionName="b3-ver", Description="one")
    eq(v1["Version"], "1", "first version")
    eq(v1["FunctionArn"], function_arn("b3-ver", "1"), "version ARN")
    eq(lam.publish_version(FunctionName="b3-ver")["Version"], "1", "no change, no new version")

    lam.update_function_configuration(FunctionName="b3-ver", Environment={"Variables": {"GREETING": "Yo"}})
    r, out = invoke_json(lam, "b3-ver", {"name": "Ada"}, Qualifier="1")
    eq(out, {"message": "Hi, Ada!"}, "version 1")
    eq(r["ExecutedVersion"], "1", "ExecutedVersion of version 1")
    r, out = invoke_json(lam, "b3-ver", {"name": "Ada"})
    eq(out, {"message": "Yo, Ada!"}, "$LATEST")
    eq(r["ExecutedVersion"], "$LATEST", "ExecutedVersion of $LATEST")
    r, out = invoke_json(lam, function_arn("b3-ver", "1"), {"name": "Ada"})
    eq(out, {"message": "Hi, Ada!"}, "by qualified ARN")

    v2 = lam.publish_version(FunctionName="b3-ver")
    eq(v2["Version"], "2", "second version")
    eq(v2["Environment"]["Variables"]["GREETING"], "Yo", "version 2's environment")
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="b3-ver")["Versions"]]
    eq(versions, ["$LATEST", "1", "2"], "ListVersionsByFunction")
    eq(lam.get_function(FunctionName="b3-ver", Qualifier="1")["Configuration"]["Version"], "1", "GetFunction v1")

    a = lam.create_alias(FunctionName="b3-ver", Name="prod", FunctionVersion="1", Description="p")
    eq(a["ResponseMetadata"]["HTTPStatusCode"], 201, "CreateAlias status")
    eq(a["AliasArn"], function_arn("b3-ver", "prod"), "AliasArn")
    eq(a["FunctionVersion"], "1", "alias version")
    expect_error("ResourceConflictException", 409, lam.create_alias, FunctionName="b3-ver", Name="prod",
                 FunctionVersion="2")
    expect_error("ResourceNotFoundException", 404, lam.create_alias, FunctionName="b3-ver", Name="ghost",
                 FunctionVersion="42")
    eq(lam.get_alias(FunctionName="b3-ver", Name="prod")["FunctionVersion"], "1", "GetAlias")
    r, out = invoke_json(lam, "b3-ver", {"name": "Ada"}, Qualifier="prod")
    eq(out, {"message": "Hi, Ada!"}, "alias -> 1")
    eq(r["ExecutedVersion"], "1", "ExecutedVersion through the alias")

    u = lam.update_alias(FunctionName="b3-ver", Name="prod", FunctionVersion="2")
    eq(u["FunctionVersion"], "2", "UpdateAlias")
    r, out = invoke_json(lam, function_arn("b3-ver", "prod"), {"name": "Ada"})
    eq(out, {"message": "Yo, Ada!"}, "alias -> 2")
    eq(r["ExecutedVersion"], "2", "ExecutedVersion through the updated alias")

    lam.create_alias(FunctionName="b3-ver", Name="dev", FunctionVersion="$LATEST")
    names = sorted(a["Name"] for a in lam.list_aliases(FunctionName="b3-ver")["Aliases"])
    eq(names, ["dev", "prod"], "ListAliases")
    d = lam.delete_alias(FunctionName="b3-ver", Name="dev")
    eq(d["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteAlias status")
    expect_error("ResourceNotFoundException", 404, lam.get_alias, FunctionName="b3-ver", Name="dev")
    expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="b3-ver", Qualifier="dev")
    expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="b3-ver", Qualifier="3")

    lam.update_function_code(FunctionName="b3-ver", ZipFile=ECHO)
    v3 = lam.publish_version(FunctionName="b3-ver")
    eq(v3["Version"], "3", "a code change publishes a new version")
    eq(v3["CodeSha256"], code_sha256(ECHO), "version 3's code")
    _, out = invoke_json(lam, "b3-ver", {"v": 3}, Qualifier="3")
    eq(out, {"v": 3}, "version 3 runs echo")
    _, out = invoke_json(lam, "b3-ver", {"name": "Bo"}, Qualifier="1")
    eq(out, {"message": "Hi, Bo!"}, "version 1 still runs hello")
    lam.delete_function(FunctionName="b3-ver")


def invoke_kinds():
    create(lam, "b3-echo", "echo")
    create(lam, "b3-bad", "misbehave", Timeout=1)

    raw = b'{"b":[1,2,3],"s":"\\u00e9\\n","n":null}'
    r = lam.invoke(FunctionName="b3-echo", Payload=raw)
    eq(r["StatusCode"], 200, "StatusCode")
    eq(r["Payload"].read(), raw, "echo byte for byte")
    eq(r["ExecutedVersion"], "$LATEST", "ExecutedVersion")
    check("FunctionError" not in r, f"no FunctionError: {r}")

    r = lam.invoke(FunctionName="b3-echo")
    eq(json.loads(r["Payload"].read()), {}, "no payload reaches the function as {}")

    big = json.dumps({"data": "x" * 100_000}).encode()
    r = lam.invoke(FunctionName="b3-echo", Payload=big)
    eq(r["Payload"].read(), big, "a 100 KB event comes back whole")

    r = lam.invoke(FunctionName="b3-echo", Payload=b'{"tail":1}', LogType="Tail")
    log = base64.b64decode(r["LogResult"]).decode()
    check(len(base64.b64decode(r["LogResult"])) <= 4096, "LogResult at most 4 KB")
    for line in ("START RequestId: ", "END RequestId: ", "REPORT RequestId: "):
        check(line in log, f"{line!r} in the tail:\n{log}")
    start = next(l for l in log.splitlines() if l.startswith("START RequestId: "))
    request_id = start.split()[2]
    eq(r["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid"), request_id,
       "x-amzn-RequestId is the invocation's RequestId")

    # A function that logs 20 MB: the tail is the last 4 KB, ending with REPORT.
    r = lam.invoke(FunctionName="b3-bad", Payload=b'{"mode":"spam"}', LogType="Tail")
    tail = base64.b64decode(r["LogResult"])
    check(len(tail) <= 4096, f"LogResult of a chatty function is {len(tail)} bytes")
    last = tail.decode(errors="replace").rstrip("\n").splitlines()[-1]
    check(last.startswith("REPORT RequestId: "), f"the tail ends with the REPORT line: {last!r}")

    r = lam.invoke(FunctionName="b3-echo", InvocationType="DryRun")
    eq(r["StatusCode"], 204, "DryRun status")
    eq(r["Payload"].read(), b"", "DryRun payload")

    r = lam.invoke(FunctionName="b3-echo", InvocationType="Event", Payload=b'{"event":"bg"}')
    eq(r["StatusCode"], 202, "Event status")
    eq(r["Payload"].read(), b"", "Event payload")
    rec = wait_for_invocation("b3-echo", lambda r: r.get("invocationType") == "Event"
                              and r.get("status") not in ("queued", "running", "pending"))
    eq(rec["status"], "success", f"the event ran: {rec}")
    check("START RequestId" in (rec.get("log") or ""), f"the record keeps the log: {rec}")

    for mode, error_type in [("error", "MisbehaveError"), ("panic", "Runtime.Panic"),
                             ("oom", "Runtime.OutOfMemory"), ("loop", "Sandbox.Timedout")]:
        r, out = invoke_json(lam, "b3-bad", {"mode": mode})
        eq(r["StatusCode"], 200, f"{mode}: status")
        eq(r.get("FunctionError"), "Unhandled", f"{mode}: FunctionError")
        eq(out.get("errorType"), error_type, f"{mode}: errorType in {out}")
        check(isinstance(out.get("errorMessage"), str), f"{mode}: errorMessage in {out}")
    for _ in range(2):
        _, out = invoke_json(lam, "b3-bad", {"mode": "state"})
        eq(out, {"invocations_seen": 1}, "a fresh VM each time")

    recs = invocations("b3-bad")
    statuses = {r["errorType"]: r["status"] for r in recs if r.get("errorType")}
    eq(statuses.get("Sandbox.Timedout"), "timeout", f"the timed-out record: {recs}")
    eq(statuses.get("MisbehaveError"), "error", f"the error record: {recs}")
    for r in recs:
        for k in ("requestId", "version", "invocationType", "status", "durationMs", "billedDurationMs",
                  "memorySizeMb", "maxMemoryUsedMb"):
            check(k in r, f"{k} in {r}")

    expect_error("InvalidRequestContentException", 400, lam.invoke, FunctionName="b3-echo", Payload=b"{not json")
    expect_error("RequestEntityTooLargeException", 413, lam.invoke, FunctionName="b3-echo",
                 Payload=json.dumps({"x": "y" * (6 * 1024 * 1024)}).encode())
    expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="b3-nope", Payload=b"{}")
    lam.delete_function(FunctionName="b3-bad")


def update_while_running():
    """An invocation that started on the old code finishes on it."""
    create(lam, "b3-upd", "misbehave", Timeout=2)
    result = {}

    def in_flight():
        r = client(read_timeout=30).invoke(FunctionName="b3-upd", Payload=b'{"mode":"loop"}')
        result["r"] = (r.get("FunctionError"), json.loads(r["Payload"].read()))

    t = threading.Thread(target=in_flight)
    t.start()
    time.sleep(0.7)
    lam.update_function_code(FunctionName="b3-upd", ZipFile=ECHO)
    _, out = invoke_json(lam, "b3-upd", {"mode": "loop"})
    eq(out, {"mode": "loop"}, "the new code (echo) runs at once")
    t.join()
    eq(result["r"][0], "Unhandled", f"the in-flight invocation: {result}")
    eq(result["r"][1].get("errorType"), "Sandbox.Timedout", f"the in-flight invocation ran the old code: {result}")
    lam.delete_function(FunctionName="b3-upd")


def concurrency_and_throttling():
    create(lam, "b3-conc", "echo")
    create(lam, "b3-slow", "misbehave", Timeout=3)
    acct = lam.get_account_settings()
    limit = acct["AccountLimit"]["ConcurrentExecutions"]
    eq(acct["AccountLimit"]["UnreservedConcurrentExecutions"], limit, "nothing reserved yet")

    p = lam.put_function_concurrency(FunctionName="b3-conc", ReservedConcurrentExecutions=0)
    eq(p["ReservedConcurrentExecutions"], 0, "PutFunctionConcurrency")
    eq(lam.get_function_concurrency(FunctionName="b3-conc").get("ReservedConcurrentExecutions"), 0,
       "GetFunctionConcurrency")
    resp = expect_error("TooManyRequestsException", 429, lam.invoke, FunctionName="b3-conc", Payload=b"{}")
    eq(resp.get("Reason"), "ReservedFunctionConcurrentInvocationLimitExceeded", f"Reason in {resp}")
    lam.delete_function_concurrency(FunctionName="b3-conc")
    check("ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="b3-conc"),
          "no reservation after DeleteFunctionConcurrency")
    _, out = invoke_json(lam, "b3-conc", {"back": True})
    eq(out, {"back": True}, "invokes again")

    # Beyond a reservation of 1: one runs, the others are throttled.
    lam.put_function_concurrency(FunctionName="b3-slow", ReservedConcurrentExecutions=1)
    eq(lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"], limit - 1,
       "UnreservedConcurrentExecutions = limit - reserved")
    slow = client(read_timeout=30, max_pool_connections=8)
    barrier = threading.Barrier(3)

    def one(_):
        barrier.wait()
        try:
            r = slow.invoke(FunctionName="b3-slow", Payload=b'{"mode":"loop"}')
            return ("ran", r.get("FunctionError"), json.loads(r["Payload"].read()))
        except slow.exceptions.TooManyRequestsException as e:
            return ("throttled", e.response.get("Reason"), e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    ran = [r for r in results if r[0] == "ran"]
    throttled = [r for r in results if r[0] == "throttled"]
    eq(len(ran), 1, f"exactly one of three runs with a reservation of 1: {results}")
    eq(ran[0][2].get("errorType"), "Sandbox.Timedout", f"{results}")
    eq(len(throttled), 2, f"{results}")
    for t in throttled:
        eq(t[1:], ("ReservedFunctionConcurrentInvocationLimitExceeded", 429), f"{results}")
    recs = invocations("b3-slow")
    check(any(r.get("status") == "throttled" for r in recs), f"throttles are recorded: {recs}")
    lam.delete_function_concurrency(FunctionName="b3-slow")
    eq(lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"], limit, "released")

    expect_error("ResourceNotFoundException", 404, lam.put_function_concurrency, FunctionName="b3-nope",
                 ReservedConcurrentExecutions=1)
    lam.delete_function(FunctionName="b3-slow")


if __name__ == "__main__":
    run([crud, pagination, versions_and_aliases, invoke_kinds, update_while_running, concurrency_and_throttling])

"""boto3 through a reverse proxy (nginx) in front of `mayfly serve`: the
signed API works unchanged when MAYFLY_ENDPOINT is the proxy's. Run by
tests/e2e/behind_nginx.rs; see mayfly_test.py for the environment."""

import json
import os

from mayfly_test import (
    check, client, create, eq, function_arn, invoke_json, package, run, wait_for_invocation,
)

lam = client()


def crud_and_invoke():
    made = create(lam, "px-echo", "echo")
    eq(made["FunctionArn"], function_arn("px-echo"), "FunctionArn")
    resp, payload = invoke_json(lam, "px-echo", {"through": "nginx"})
    eq(resp["StatusCode"], 200, "invoke status")
    eq(payload, {"through": "nginx"}, "the echo")
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    check("px-echo" in names, f"listed: {names}")


def a_large_payload_and_a_large_package():
    # 5 MB each way through the proxy, unbuffered.
    big = {"blob": "x" * (5 * 1024 * 1024)}
    _, payload = invoke_json(lam, "px-echo", big)
    eq(len(payload["blob"]), len(big["blob"]), "5 MB echoed")
    # A Linux package of several megabytes (base64 in the JSON body).
    code = package("rust-echo")
    check(len(code) > 1_000_000, f"rust-echo.zip is {len(code)} bytes")
    lam.update_function_code(FunctionName="px-echo", ZipFile=code)
    lam.get_waiter("function_updated_v2").wait(FunctionName="px-echo")
    got = lam.get_function(FunctionName="px-echo")["Configuration"]
    eq(got["CodeSize"], len(code), "CodeSize after the update")


def an_event_and_a_version():
    lam.invoke(FunctionName="px-echo", InvocationType="Event", Payload=json.dumps({"async": 1}))
    wait_for_invocation("px-echo", lambda r: r["invocationType"] == "Event", within=60)
    version = lam.publish_version(FunctionName="px-echo")["Version"]
    lam.create_alias(FunctionName="px-echo", Name="live", FunctionVersion=version)
    resp, _ = invoke_json(lam, "px-echo", {"alias": True}, Qualifier="live")
    eq(resp["ExecutedVersion"], version, "ExecutedVersion through the alias")
    lam.delete_function(FunctionName="px-echo")


if __name__ == "__main__":
    check(os.environ["MAYFLY_ENDPOINT"] != "", "an endpoint")
    run([crud_and_invoke, a_large_payload_and_a_large_package, an_event_and_a_version])

"""Signature Version 4 at `mayfly serve`, from boto3 and botocore's own
signer: a wrong secret, an unknown key, no signature, a skewed clock and a
tampered body each get 403 with the AWS error; /healthz needs nothing. Run by
tests/e2e/boto3.rs; see mayfly_test.py for the environment."""

import datetime
import json
from unittest import mock

from mayfly_test import (
    ACCESS_KEY_ID, ENDPOINT, SECRET_ACCESS_KEY, check, client, create, eq, error_of, expect_error, raw_request,
    run, signed_request,
)

lam = client()


def setup():
    create(lam, "auth-echo", "echo")


def wrong_secret():
    bad = client(secret_access_key="x" * 40)
    r = expect_error("InvalidSignatureException", 403, bad.list_functions)
    print(f"   {r['Error']['Message']}")
    expect_error("InvalidSignatureException", 403, bad.invoke, FunctionName="auth-echo", Payload=b"{}")
    expect_error("InvalidSignatureException", 403, bad.delete_function, FunctionName="auth-echo")
    # Nothing happened.
    eq(lam.get_function(FunctionName="auth-echo")["Configuration"]["FunctionName"], "auth-echo", "still there")


def unknown_key():
    bad = client(access_key_id="AKIAUNKNOWN000000000")
    r = expect_error("UnrecognizedClientException", 403, bad.list_functions)
    print(f"   {r['Error']['Message']}")
    expect_error("UnrecognizedClientException", 403, bad.invoke, FunctionName="auth-echo", Payload=b"{}")


def unsigned():
    for method, path, body in [
        ("GET", "/2015-03-31/functions", b""),
        ("GET", "/2015-03-31/functions/auth-echo", b""),
        ("POST", "/2015-03-31/functions/auth-echo/invocations", b"{}"),
        ("POST", "/2015-03-31/functions", json.dumps({"FunctionName": "auth-sneaky"}).encode()),
        ("GET", "/2016-08-19/account-settings", b""),
    ]:
        status, headers, data = raw_request(method, ENDPOINT + path, body, {"Content-Type": "application/json"})
        kind, parsed = error_of(status, headers, data)
        eq((status, kind), (403, "MissingAuthenticationTokenException"), f"unsigned {method} {path}: {data!r}")
        check(parsed.get("message") or parsed.get("Message"), f"a message: {parsed}")
    # An Authorization header that is not SigV4.
    status, headers, data = raw_request("GET", ENDPOINT + "/2015-03-31/functions", b"",
                                        {"Authorization": "Basic dXNlcjpwYXNz"})
    eq(status, 403, f"Basic auth: {data!r}")
    status, _, data = raw_request("GET", ENDPOINT + "/healthz")
    eq(status, 200, f"/healthz unsigned: {data!r}")


def signed_by_hand():
    status, headers, data = signed_request("GET", "/2015-03-31/functions/auth-echo")
    eq(status, 200, f"a request signed with SigV4Auth: {data!r}")
    status, headers, data = signed_request("POST", "/2015-03-31/functions/auth-echo/invocations",
                                           body=b'{"hand":"signed"}')
    eq((status, data), (200, b'{"hand":"signed"}'), "a signed invoke")


def skewed_clock():
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for minutes in (-10, 10, -60 * 24):
        when = now + datetime.timedelta(minutes=minutes)
        status, headers, data = signed_request("GET", "/2015-03-31/functions", when=when)
        kind, _ = error_of(status, headers, data)
        eq((status, kind), (403, "InvalidSignatureException"), f"signed {minutes} min off: {data!r}")
    # 4 minutes off is within the window.
    status, _, data = signed_request("GET", "/2015-03-31/functions", when=now - datetime.timedelta(minutes=4))
    eq(status, 200, f"signed 4 min ago: {data!r}")
    # The same through a boto3 client whose clock is 10 minutes fast.
    skewed = client()
    with mock.patch("botocore.auth.get_current_datetime",
                    lambda *a, **k: datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                    + datetime.timedelta(minutes=10)):
        r = expect_error("InvalidSignatureException", 403, skewed.list_functions)
    print(f"   {r['Error']['Message']}")


def tampered():
    path = "/2015-03-31/functions/auth-echo/invocations"
    status, headers, data = signed_request("POST", path, body=b'{"amount":1}', send_body=b'{"amount":9}')
    kind, _ = error_of(status, headers, data)
    eq((status, kind), (403, "InvalidSignatureException"), f"tampered body: {data!r}")
    # Same length, one byte changed, through the management API.
    body = json.dumps({"Timeout": 5}).encode()
    status, headers, data = signed_request("PUT", "/2015-03-31/functions/auth-echo/configuration", body=body,
                                           headers={"Content-Type": "application/json"},
                                           send_body=body.replace(b"5", b"9"))
    kind, _ = error_of(status, headers, data)
    eq((status, kind), (403, "InvalidSignatureException"), f"tampered update: {data!r}")
    eq(lam.get_function_configuration(FunctionName="auth-echo")["Timeout"], 3, "the tampered update did nothing")
    # A tampered query string.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="GET", url=ENDPOINT + "/2015-03-31/functions?MaxItems=1")
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "lambda", "us-east-1").add_auth(req)
    p = req.prepare()
    status, headers, data = raw_request("GET", ENDPOINT + "/2015-03-31/functions?MaxItems=3", b"", dict(p.headers))
    kind, _ = error_of(status, headers, data)
    eq((status, kind), (403, "InvalidSignatureException"), f"tampered query: {data!r}")
    # A signature for another service.
    req = AWSRequest(method="GET", url=ENDPOINT + "/2015-03-31/functions")
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "s3", "us-east-1").add_auth(req)
    status, headers, data = raw_request("GET", ENDPOINT + "/2015-03-31/functions", b"", dict(req.prepare().headers))
    eq(status, 403, f"signed for s3: {data!r}")


if __name__ == "__main__":
    run([setup, wrong_secret, unknown_key, unsigned, signed_by_hand, skewed_clock, tampered])

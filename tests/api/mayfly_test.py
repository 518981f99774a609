"""Shared helpers of the boto3 end-to-end scripts.

Each script is run as `python3.11 tests/api/<script>.py` by a Rust test of
tests/e2e/ that started a `mayfly serve` (`Server::python` in
tests/e2e/support/python.rs); the environment names it:

  MAYFLY_ENDPOINT           http://127.0.0.1:PORT
  MAYFLY_ACCESS_KEY_ID      the server's key pair
  MAYFLY_SECRET_ACCESS_KEY
  MAYFLY_IMAGES             target/images (echo.zip, hello.zip, ...)
  MAYFLY_TMP                a scratch directory of this server
  MAYFLY_DATA_DIR           its data directory (its VMs' command lines name it)
  MAYFLY_METRICS            http://127.0.0.1:PORT2 (when the server has metrics)

A failed check raises AssertionError with a message saying what was expected
and what came back; the script then exits non-zero.
"""

import base64
import hashlib
import io
import json
import os
import sys
import time
import traceback
import zipfile

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["MAYFLY_ENDPOINT"]
ACCESS_KEY_ID = os.environ["MAYFLY_ACCESS_KEY_ID"]
SECRET_ACCESS_KEY = os.environ["MAYFLY_SECRET_ACCESS_KEY"]
IMAGES = os.environ["MAYFLY_IMAGES"]
TMP = os.environ.get("MAYFLY_TMP", "/tmp")
METRICS = os.environ.get("MAYFLY_METRICS")
REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE = "arn:aws:iam::000000000000:role/lambda"
RUNTIME = "provided.al2023"


def client(access_key_id=None, secret_access_key=None, read_timeout=60, max_pool_connections=10, **config):
    """A Lambda client for the server: no retries, so that every throttle
    and error is seen as it is."""
    cfg = Config(
        retries={"max_attempts": 0, "mode": "standard"},
        read_timeout=read_timeout,
        connect_timeout=10,
        max_pool_connections=max_pool_connections,
        **config,
    )
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=access_key_id or ACCESS_KEY_ID,
        aws_secret_access_key=secret_access_key or SECRET_ACCESS_KEY,
        config=cfg,
    )


def package(name):
    """The bytes of target/images/<name>.zip."""
    with open(os.path.join(IMAGES, name + ".zip"), "rb") as f:
        return f.read()


def image(file):
    with open(os.path.join(IMAGES, file), "rb") as f:
        return f.read()


def make_zip(entries, compression=zipfile.ZIP_STORED):
    """A zip (bytes) of {name: bytes}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            info.compress_type = compression
            z.writestr(info, data)
    return buf.getvalue()


def floor_without_pvh():
    """floor.elf with its PVH note type changed from 18 to 17."""
    floor = bytearray(image("floor.elf"))
    at = floor.index(b"Xen\0") - 4
    assert floor[at] == 18, "floor.elf: XEN_ELFNOTE_PHYS32_ENTRY expected"
    floor[at] = 17
    return bytes(floor)


def code_sha256(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def function_arn(name, qualifier=None):
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def create(lam, name, zip_name="echo", **kw):
    code = zip_name if isinstance(zip_name, bytes) else package(zip_name)
    return lam.create_function(
        FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="bootstrap", Code={"ZipFile": code}, **kw
    )


def invoke_json(lam, name, event=None, **kw):
    """Invokes and returns (response, payload parsed as JSON)."""
    if event is not None:
        kw["Payload"] = event if isinstance(event, (bytes, str)) else json.dumps(event)
    resp = lam.invoke(FunctionName=name, **kw)
    raw = resp["Payload"].read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        raise AssertionError(f"invoke {name}: payload is not JSON: {raw[:300]!r}")
    return resp, payload


def expect_error(code, status, fn, *args, **kw):
    """Calls fn, which must raise a ClientError with this code and HTTP
    status; returns the error response."""
    try:
        result = fn(*args, **kw)
    except ClientError as e:
        got = e.response.get("Error", {}).get("Code")
        got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        codes = code if isinstance(code, (list, tuple)) else [code]
        check(got in codes and got_status == status,
              f"{fn.__name__}: expected {codes} {status}, got {got} {got_status}: {e.response}")
        message = e.response.get("Error", {}).get("Message") or e.response.get("message")
        check(message, f"{fn.__name__}: error without a message: {e.response}")
        return e.response
    raise AssertionError(f"{fn.__name__}: expected {code} {status}, but it succeeded: {str(result)[:500]}")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def list_all_function_names(lam):
    names, marker = [], None
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_functions(**kw)
        names += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            return names


def invocations(name, limit=50):
    """GET /mayfly/2025-01-01/functions/{name}/invocations?Limit=N, signed."""
    status, _, body = signed_request("GET", f"/mayfly/2025-01-01/functions/{name}/invocations?Limit={limit}")
    eq(status, 200, f"GET invocations of {name}: {body[:300]!r}")
    return json.loads(body)["Invocations"]


def wait_for_invocation(name, pred, within=15):
    deadline = time.time() + within
    while True:
        records = invocations(name)
        for r in records:
            if pred(r):
                return r
        if time.time() > deadline:
            raise AssertionError(f"no matching invocation record of {name} within {within} s: {records}")
        time.sleep(0.2)


def signed_request(method, path, body=b"", headers=None, when=None, access_key_id=None, secret_access_key=None,
                   send_body=None):
    """Signs a request with botocore's SigV4Auth (at `when`, a datetime, if
    given) and sends it with urllib; `send_body` replaces the body after
    signing. Returns (status, headers, body)."""
    from unittest import mock
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = ENDPOINT + path
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(access_key_id or ACCESS_KEY_ID, secret_access_key or SECRET_ACCESS_KEY)
    auth = SigV4Auth(creds, "lambda", REGION)
    if when is None:
        auth.add_auth(req)
    else:
        # botocore takes the signing time from get_current_datetime().
        with mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: when):
            auth.add_auth(req)
    prepared = req.prepare()
    data = prepared.body if send_body is None else send_body
    return raw_request(method, url, data, dict(prepared.headers))


def raw_request(method, url, body=b"", headers=None):
    """An HTTP request with urllib; returns (status, headers, body) for any
    status."""
    import urllib.request
    import urllib.error

    if isinstance(body, str):
        body = body.encode()
    r = urllib.request.Request(url, data=body if body else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def error_of(status, headers, body):
    """(X-Amzn-ErrorType without suffix, parsed body) of an error answer."""
    lower = {k.lower(): v for k, v in headers.items()}
    kind = lower.get("x-amzn-errortype", "").split(":")[0]
    try:
        parsed = json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON ({status} {kind}): {body[:300]!r}")
    return kind, parsed


def run(checks):
    """Runs each check (a function), printing its name and time; exits 1 at
    the first failure with its traceback."""
    for fn in checks:
        started = time.time()
        print(f"== {fn.__name__}", flush=True)
        try:
            fn()
        except Exception:
            traceback.print_exc()
            print(f"FAILED: {fn.__name__}", flush=True)
            sys.exit(1)
        print(f"   ok ({time.time() - started:.1f} s)", flush=True)
    print("all checks passed")

"""boto3 against `mayfly serve`: every bad request gets its AWS error, and a
rejected package leaves nothing behind. Run by tests/e2e/boto3.rs; see
mayfly_test.py for the environment."""

import json
import os
import zipfile

from mayfly_test import (
    check, client, code_sha256, create, eq, expect_error, floor_without_pvh, image, invoke_json,
    list_all_function_names, make_zip, package, run,
)

lam = client()
# The 60 MB upload: no retries, and time to send 80 MB of base64.
big_lam = client(read_timeout=300)
ECHO = package("echo")
INVALID = ["InvalidParameterValueException", "ValidationException"]


def not_stored(name):
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName=name)
    check(name not in list_all_function_names(lam), f"{name} must not be listed")


def configuration_limits():
    for name, kw in [
        ("e-mem-high", {"MemorySize": 10241}),
        ("e-timeout-high", {"Timeout": 901}),
    ]:
        expect_error(INVALID, 400, create, lam, name, "echo", **kw)
        not_stored(name)
    # The limits themselves are fine.
    c = create(lam, "e-limits", "echo", MemorySize=10240, Timeout=900)
    eq((c["MemorySize"], c["Timeout"]), (10240, 900), "the largest MemorySize and Timeout")
    lam.delete_function(FunctionName="e-limits")

    expect_error("InvalidParameterValueException", 400, lam.create_function, FunctionName="e-python",
                     Runtime="python3.12", Role="arn:aws:iam::000000000000:role/lambda", Handler="bootstrap",
                     Code={"ZipFile": ECHO})
    not_stored("e-python")
    for rt in ("provided", "provided.al2", "provided.al2023"):
        lam.create_function(FunctionName=f"e-rt-{rt.replace('.', '-')}", Runtime=rt,
                            Role="arn:aws:iam::000000000000:role/lambda", Handler="bootstrap",
                            Code={"ZipFile": ECHO})

    c = create(lam, "e-env-ok", "echo", Environment={"Variables": {"BIG": "x" * 4000}})
    eq(len(c["Environment"]["Variables"]["BIG"]), 4000, "a 4000-byte variable is within the 4 KB")
    big_env = {"Variables": {"BIG": "x" * 4200}}
    expect_error("InvalidParameterValueException", 400, create, lam, "e-env", "echo", Environment=big_env)
    not_stored("e-env")
    many_env = {"Variables": {f"K{i}": "v" * 40 for i in range(100)}}  # > 4 KB in all
    expect_error("InvalidParameterValueException", 400, create, lam, "e-env2", "echo", Environment=many_env)
    expect_error(INVALID, 400, create, lam, "e-env3", "echo", Environment={"Variables": {"1BAD-KEY": "v"}})

    for bad in ("bad name", "a" * 65, "x/y"):
        expect_error(INVALID, 400, create, lam, bad, "echo")

    # Updates are checked the same way and change nothing.
    c = create(lam, "e-upd", "echo")
    expect_error(INVALID, 400, lam.update_function_configuration, FunctionName="e-upd", MemorySize=10241)
    expect_error(INVALID, 400, lam.update_function_configuration, FunctionName="e-upd", Timeout=901)
    expect_error("InvalidParameterValueException", 400, lam.update_function_configuration, FunctionName="e-upd",
                 Environment=big_env)
    expect_error("InvalidParameterValueException", 400, lam.update_function_configuration, FunctionName="e-upd",
                 Runtime="nodejs22.x")
    after = lam.get_function_configuration(FunctionName="e-upd")
    eq((after["MemorySize"], after["Timeout"], after["RevisionId"]), (128, 3, c["RevisionId"]),
       "a refused update changes nothing")


def packages():
    echo_elf = image("echo.elf")
    cases = {
        "e-nobootstrap": make_zip({"main": echo_elf}),
        "e-nopvh": make_zip({"bootstrap": floor_without_pvh()}),
        "e-text": make_zip({"bootstrap": b"#!/bin/sh\necho hi\n"}),
        "e-nested": make_zip({"dir/bootstrap": echo_elf}),
        "e-notzip": b"PK\x03\x04 this is not a zip at all",
        "e-empty": make_zip({}),
    }
    for name, code in cases.items():
        r = expect_error("InvalidParameterValueException", 400, create, lam, name, code)
        print(f"   {name}: {r['Error']['Message']}")
        not_stored(name)
    r = expect_error("InvalidParameterValueException", 400, create, lam, "e-nobootstrap", cases["e-nobootstrap"])
    check("bootstrap" in r["Error"]["Message"], f"the message names bootstrap: {r['Error']['Message']}")
    r = expect_error("InvalidParameterValueException", 400, create, lam, "e-nopvh", cases["e-nopvh"])
    check("PVH" in r["Error"]["Message"], f"the message names PVH: {r['Error']['Message']}")

    # A valid bootstrap among other files is fine.
    c = create(lam, "e-extra", make_zip({"README": b"hi", "bootstrap": echo_elf}, zipfile.ZIP_DEFLATED))
    _, out = invoke_json(lam, "e-extra", {"extra": 1})
    eq(out, {"extra": 1}, "a package with more files runs")

    # Over 250 MB unzipped (compresses to almost nothing).
    bomb = make_zip({"bootstrap": echo_elf, "padding": b"\0" * (251 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    print(f"   the 251 MB unzipped package is {len(bomb)} bytes")
    expect_error("InvalidParameterValueException", 400, create, lam, "e-bomb", bomb)
    not_stored("e-bomb")

    # An update with a bad package leaves the old code.
    expect_error("InvalidParameterValueException", 400, lam.update_function_code, FunctionName="e-extra",
                 ZipFile=cases["e-nopvh"])
    eq(lam.get_function_configuration(FunctionName="e-extra")["CodeSha256"], c["CodeSha256"],
       "the code after a refused update")
    _, out = invoke_json(lam, "e-extra", {"still": 1})
    eq(out, {"still": 1}, "the old code still runs")


def sixty_megabytes():
    # Random bytes, stored: the zip is as large as its content.
    blob = os.urandom(60 * 1024 * 1024)
    big = make_zip({"bootstrap": image("echo.elf"), "blob": blob})
    check(len(big) > 60 * 1024 * 1024, f"the zip is {len(big)} bytes")
    expect_error("RequestEntityTooLargeException", 413, create, big_lam, "e-60mb", big)
    not_stored("e-60mb")
    create(lam, "e-60mb-update", "echo")
    expect_error("RequestEntityTooLargeException", 413, big_lam.update_function_code,
                 FunctionName="e-60mb-update", ZipFile=big)
    eq(lam.get_function_configuration(FunctionName="e-60mb-update")["CodeSha256"], code_sha256(ECHO),
       "the code after a refused 60 MB update")
    # The server still answers afterwards.
    _, out = invoke_json(lam, "e-60mb-update", {"after": "60mb"})
    eq(out, {"after": "60mb"}, "invoke after the 60 MB upload")


def unknown_things():
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="e-missing")
    expect_error("ResourceNotFoundException", 404, lam.get_function_configuration, FunctionName="e-missing")
    expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="e-missing")
    expect_error("ResourceNotFoundException", 404, lam.publish_version, FunctionName="e-missing")
    expect_error("ResourceNotFoundException", 404, lam.list_versions_by_function, FunctionName="e-missing")
    expect_error("ResourceNotFoundException", 404, lam.list_aliases, FunctionName="e-missing")
    expect_error("ResourceNotFoundException", 404, lam.get_function_concurrency, FunctionName="e-missing")
    create(lam, "e-known", "echo")
    expect_error("ResourceNotFoundException", 404, lam.get_alias, FunctionName="e-known", Name="nope")
    expect_error("ResourceNotFoundException", 404, lam.invoke, FunctionName="e-known", Qualifier="5")
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="e-known", Qualifier="5")
    expect_error("InvalidRequestContentException", 400, lam.invoke, FunctionName="e-known", Payload=b"not json")
    expect_error("InvalidRequestContentException", 400, lam.invoke, FunctionName="e-known", Payload=b'{"a":')
    expect_error("RequestEntityTooLargeException", 413, lam.invoke, FunctionName="e-known",
                 Payload=json.dumps({"x": "y" * (6 * 1024 * 1024 + 1)}).encode())


if __name__ == "__main__":
    run([configuration_limits, packages, sixty_megabytes, unknown_things])

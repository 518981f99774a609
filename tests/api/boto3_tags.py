"""boto3 against `mayfly serve`: TagResource, UntagResource, ListTags, the
Tags of CreateFunction and GetFunction, and their errors, as Lambda answers
them. Run by tests/e2e/boto3.rs; see mayfly_test.py for the environment."""

from mayfly_test import check, client, create, eq, expect_error, function_arn, run, signed_request, error_of

lam = client()
QUALIFIED = "Tags on function aliases and versions are not supported. Please specify a function ARN."
TOO_MANY = "Number of tags exceeds resource tag limit."


def message(response):
    return response["Error"]["Message"]


def lifecycle():
    arn = function_arn("bt-life")
    c = create(lam, "bt-life", Tags={"key_a": "value_a"})
    check("Tags" not in c, f"the configuration has no Tags: {c}")
    eq(lam.list_tags(Resource=arn)["Tags"], {"key_a": "value_a"}, "tags after create")
    g = lam.get_function(FunctionName="bt-life")
    eq(g["Tags"], {"key_a": "value_a"}, "GetFunction's Tags")
    revisions = [g["Configuration"]["RevisionId"]]

    r = lam.tag_resource(Resource=arn, Tags={"key_b": "value_b", "key_c": "value_c", "key_d": "value_d"})
    eq(r["ResponseMetadata"]["HTTPStatusCode"], 204, "TagResource's status")
    lam.tag_resource(Resource=arn, Tags={"key_b": "value_b", "key_c": "value_x"})
    eq(lam.list_tags(Resource=arn)["Tags"],
       {"key_a": "value_a", "key_b": "value_b", "key_c": "value_x", "key_d": "value_d"}, "merged tags")
    g = lam.get_function(FunctionName=arn)
    eq(g["Tags"], lam.list_tags(Resource=arn)["Tags"], "GetFunction by ARN shows the same tags")
    revisions.append(g["Configuration"]["RevisionId"])

    r = lam.untag_resource(Resource=arn, TagKeys=["key_c", "key_d", "key_nope"])
    eq(r["ResponseMetadata"]["HTTPStatusCode"], 204, "UntagResource's status")
    eq(lam.list_tags(Resource=arn)["Tags"], {"key_a": "value_a", "key_b": "value_b"}, "after untag")
    revisions.append(lam.get_function(FunctionName="bt-life")["Configuration"]["RevisionId"])

    lam.untag_resource(Resource=arn, TagKeys=["key_a", "key_b"])
    eq(lam.list_tags(Resource=arn)["Tags"], {}, "after untagging all")
    g = lam.get_function(FunctionName="bt-life")
    check("Tags" not in g, f"no tags: no Tags in GetFunction: {g}")
    revisions.append(g["Configuration"]["RevisionId"])
    eq(len(set(revisions)), len(revisions), f"every tag change gives a new RevisionId: {revisions}")

    lam.delete_function(FunctionName="bt-life")
    r = expect_error("ResourceNotFoundException", 404, lam.list_tags, Resource=arn)
    eq(message(r), f"Function not found: {arn}", "ListTags of a deleted function")


def errors():
    arn = function_arn("bt-err")
    create(lam, "bt-err")
    v1 = lam.publish_version(FunctionName="bt-err")["FunctionArn"]
    eq(v1, arn + ":1", "the version's ARN")

    for resource in (v1, arn + ":$LATEST", arn + ":alias"):
        r = expect_error("InvalidParameterValueException", 400, lam.tag_resource, Resource=resource,
                         Tags={"a": "b"})
        eq(message(r), QUALIFIED, f"TagResource of {resource}")
        r = expect_error("InvalidParameterValueException", 400, lam.list_tags, Resource=resource)
        eq(message(r), QUALIFIED, f"ListTags of {resource}")
        expect_error("InvalidParameterValueException", 400, lam.untag_resource, Resource=resource,
                     TagKeys=["a"])

    missing = function_arn("bt-missing")
    for call, kw in ((lam.tag_resource, {"Tags": {"a": "b"}}), (lam.untag_resource, {"TagKeys": ["a"]}),
                     (lam.list_tags, {})):
        r = expect_error("ResourceNotFoundException", 404, call, Resource=missing, **kw)
        eq(message(r), f"Function not found: {missing}", call.__name__)

    r = expect_error("ValidationException", 400, lam.tag_resource, Resource="arn:aws:something",
                     Tags={"a": "b"})
    check("at 'resource' failed to satisfy constraint" in message(r), message(r))

    eq(lam.list_tags(Resource=arn)["Tags"], {}, "a function never tagged")
    lam.untag_resource(Resource=arn, TagKeys=["somekey"])
    r = expect_error("ValidationException", 400, lam.untag_resource, Resource=arn, TagKeys=[])
    eq(message(r), "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: "
       "Member must not be null", "UntagResource without keys")
    r = expect_error("InvalidParameterValueException", 400, lam.tag_resource, Resource=arn, Tags={})
    eq(message(r), "An error occurred and the request cannot be processed.", "TagResource without tags")

    r = expect_error("InvalidParameterValueException", 400, lam.tag_resource, Resource=arn,
                     Tags={f"{k}_key": f"{k}_value" for k in range(51)})
    eq(message(r), TOO_MANY, "51 tags")
    lam.tag_resource(Resource=arn, Tags={f"{k}_key": f"{k}_value" for k in range(50)})
    eq(len(lam.list_tags(Resource=arn)["Tags"]), 50, "50 tags")
    eq(len(lam.get_function(FunctionName="bt-err")["Tags"]), 50, "50 tags in GetFunction")
    r = expect_error("InvalidParameterValueException", 400, lam.tag_resource, Resource=arn,
                     Tags={"a_key": "a_value"})
    eq(message(r), TOO_MANY, "one more than 50")

    r = expect_error("InvalidParameterValueException", 400, create, lam, "bt-51",
                     Tags={f"{k}_key": f"{k}_value" for k in range(51)})
    eq(message(r), TOO_MANY, "CreateFunction with 51 tags")
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="bt-51")
    expect_error("InvalidParameterValueException", 400, create, lam, "bt-aws", Tags={"aws:key": "v"})
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="bt-aws")
    expect_error("ValidationException", 400, create, lam, "bt-long", Tags={"k" * 129: "v"})
    expect_error("ResourceNotFoundException", 404, lam.get_function, FunctionName="bt-long")


def raw_requests():
    """What no AWS client sends: a body without Tags, and the error shape."""
    arn = function_arn("bt-raw")
    create(lam, "bt-raw")
    path = "/2017-03-31/tags/" + arn.replace(":", "%3A")
    status, headers, body = signed_request("POST", path, b"{}", {"content-type": "application/json"})
    kind, parsed = error_of(status, headers, body)
    eq((status, kind), (400, "ValidationException"), f"TagResource without Tags: {parsed}")
    eq(parsed["message"], "1 validation error detected: Value null at 'tags' failed to satisfy constraint: "
       "Member must not be null", "its message")
    status, headers, body = signed_request("POST", path, b'{"Tags": {"a": null}}',
                                           {"content-type": "application/json"})
    kind, _ = error_of(status, headers, body)
    eq((status, kind), (400, "ValidationException"), "a tag value that is not a string")
    status, _, body = signed_request("POST", path, b'{"Tags": {"a": "1"}}', {"content-type": "application/json"})
    eq((status, body), (204, b""), "TagResource's raw answer")
    status, _, body = signed_request("GET", path)
    eq(status, 200, f"ListTags: {body!r}")
    import json
    eq(json.loads(body), {"Tags": {"a": "1"}}, "ListTags's raw answer")
    status, _, body = signed_request("DELETE", path + "?tagKeys=a&tagKeys=b")
    eq((status, body), (204, b""), "UntagResource's raw answer")
    eq(lam.list_tags(Resource=arn)["Tags"], {}, "after the raw untag")


run([lifecycle, errors, raw_requests])

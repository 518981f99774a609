"""boto3 against a Ceph RGW (the S3 store of the object-event tests).

Run by tests/e2e/support/ceph.rs as `python3.11 tests/api/rgw.py COMMAND
ARGS`, with RGW_ENDPOINT, RGW_ACCESS_KEY and RGW_SECRET_KEY naming the
gateway and its user:

  bucket NAME                                 create a bucket
  notify BUCKET TOPIC PUSH_ENDPOINT PREFIX    a persistent topic pushing to
                                              PUSH_ENDPOINT, and the bucket's
                                              notification of every
                                              ObjectCreated event of keys
                                              under PREFIX to it
  put BUCKET KEY...                           PUT each key (its body: the key)

Each command prints what it did as JSON on one line and exits non-zero on
the first failure.
"""

import json
import os
import sys

import boto3
from botocore.config import Config


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["RGW_ENDPOINT"],
        aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
        aws_secret_access_key=os.environ["RGW_SECRET_KEY"],
        region_name="default",
        config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}),
    )


def bucket(name):
    client("s3").create_bucket(Bucket=name)
    return {"bucket": name}


def notify(bucket_name, topic, push_endpoint, prefix):
    # RGW's topics are created through its SNS-compatible API; a
    # persistent topic keeps events in the cluster until the endpoint
    # answers 2xx.
    arn = client("sns").create_topic(
        Name=topic,
        Attributes={"push-endpoint": push_endpoint, "persistent": "true"},
    )["TopicArn"]
    configuration = {
        "TopicConfigurations": [
            {
                "Id": f"{topic}-created",
                "TopicArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
            }
        ]
    }
    s3 = client("s3")
    s3.put_bucket_notification_configuration(
        Bucket=bucket_name, NotificationConfiguration=configuration
    )
    got = s3.get_bucket_notification_configuration(Bucket=bucket_name)
    assert got["TopicConfigurations"][0]["TopicArn"] == arn, got
    return {"topic": arn}


def put(bucket_name, *keys):
    s3 = client("s3")
    etags = {}
    for key in keys:
        etags[key] = s3.put_object(Bucket=bucket_name, Key=key, Body=key.encode())["ETag"]
    return {"put": etags}


COMMANDS = {"bucket": bucket, "notify": notify, "put": put}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))

"""The archive tests' independent S3 client (boto3 from the moto venv), so that what the
tests check in the bucket is not seen through our own object_store code.

    python s3_client.py create-bucket BUCKET
    python s3_client.py iam-user                     # prints {"id": ..., "secret": ...}
    python s3_client.py list BUCKET [PREFIX]         # prints [{key, size, etag, lastModified}]
    python s3_client.py download BUCKET PREFIX DIR   # every object under PREFIX into DIR
    python s3_client.py uploads BUCKET               # multipart uploads not completed
    python s3_client.py mark BUCKET KEY              # a HEAD that shows up in the server log

Endpoint and credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError


def client(service):
    return boto3.client(
        service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1"
    )


def objects(s3, bucket, prefix=""):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def main(cmd, *args):
    s3 = client("s3")
    if cmd == "create-bucket":
        s3.create_bucket(Bucket=args[0])
    elif cmd == "iam-user":
        iam = client("iam")
        iam.create_user(UserName="archiver")
        key = iam.create_access_key(UserName="archiver")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="archiver", PolicyName="all", PolicyDocument=json.dumps(policy)
        )
        print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
    elif cmd == "list":
        found = [
            {
                "key": o["Key"],
                "size": o["Size"],
                "etag": o["ETag"],
                "lastModified": o["LastModified"].isoformat(),
            }
            for o in objects(s3, args[0], args[1] if len(args) > 1 else "")
        ]
        print(json.dumps(found))
    elif cmd == "download":
        bucket, prefix, dest = args
        for o in objects(s3, bucket, prefix):
            rel = o["Key"][len(prefix) :].lstrip("/")
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, o["Key"], path)
    elif cmd == "uploads":
        found = s3.list_multipart_uploads(Bucket=args[0]).get("Uploads", [])
        print(json.dumps([u["Key"] for u in found]))
    elif cmd == "mark":
        try:
            s3.head_object(Bucket=args[0], Key=args[1])
        except ClientError:
            pass
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(*sys.argv[1:])

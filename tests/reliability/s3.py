"""A real S3-compatible server for the store tests: moto's server mode on a free port.

Credentials and the endpoint reach equisweep the way a user's would: through the standard
AWS environment variables, which pyarrow and boto3 both read. The secret is a marker the
tests grep for in everything a sweep writes.
"""

from __future__ import annotations

import contextlib
import logging
import os

from tests.conftest import free_port

SECRET = "equisweep-test-secret-7f3c9a"
ACCESS_KEY = "EQUISWEEPTESTKEY"


@contextlib.contextmanager
def moto_s3(bucket: str = "equisweep-test"):
    """Start the server, point the AWS environment at it, create `bucket`; yield
    (endpoint, bucket, env) and restore the environment afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=bucket)
        yield endpoint, bucket, env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def all_objects(bucket: str) -> dict[str, bytes]:
    """Every object in `bucket` (key -> bytes): what a sweep wrote."""
    import boto3

    s3 = boto3.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out

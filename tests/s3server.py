"""An S3 server of the tests' own: moto's server mode on a free loopback port.

Processes reach it as any S3-compatible store is reached: ``AWS_ENDPOINT_URL`` (the
standard variable of botocore, hence of s3fs and dvc-s3) and credentials in
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``. Nothing in cmf-orchestrate knows it is a
test server: a DVC remote ``s3://bucket/prefix`` is all the settings say.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Credentials moto accepts; no real account is ever named.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing-secret"  # a dummy value for a local mock server
REGION = "us-east-1"


def moto_available() -> str | None:
    """None when moto's server and DVC's S3 plugin are installed, otherwise why not."""
    for module in ("moto.server", "dvc_s3", "boto3"):
        try:
            __import__(module)
        except ImportError as exc:
            return f"{module} is not installed ({exc}); install the dev group (moto[server], dvc-s3)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class S3Server:
    """A running S3 server.

    Attributes:
        endpoint: Its URL, ``http://127.0.0.1:<port>``.
    """

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the server, as users configure any S3-compatible store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> str:
        """Create a bucket; return its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """Object key -> ETag of every object under ``prefix``."""
        found: dict[str, str] = {}
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[str(item["Key"])] = str(item["ETag"])
        return found

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


def _up(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def moto_s3(logs: Path | None = None) -> Iterator[S3Server]:
    """Run moto's S3 server in a process of its own (uploads of 100 MB do not contend with the
    caller's threads); stop it afterwards.

    Raises:
        RuntimeError: The server did not answer within 60 seconds.
    """
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    out = (logs / "moto.log").open("wb") if logs is not None else subprocess.DEVNULL
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _up(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto's S3 server did not start on {endpoint} (exit code {proc.poll()})")
            time.sleep(0.2)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if logs is not None and hasattr(out, "close"):
            out.close()

"""Collect: fetch data from sources."""

import hashlib
import time
import urllib.error
import urllib.request

from .registry import Param, task_type

CHUNK = 64 * 1024


@task_type(
    "collect.http_get",
    queue="collect",
    title="HTTP GET",
    params=[
        Param("url", "url", label="URL", required=True, help="The address to fetch."),
        Param("timeout", "int", label="Timeout (s)", default=30, min=1, max=600),
        Param("max_bytes", "int", label="Max size (bytes)", default=50_000_000, min=1),
        Param("expect_status", "int", label="Expected status", default=200, min=100, max=599),
    ],
    soft_time_limit=660,
)
def http_get(run, url, timeout=30, max_bytes=50_000_000, expect_status=200):
    """Fetch a URL and record its status, size, checksum and time taken."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": "job-scheduler-admin/1"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (operators choose URLs)
    except urllib.error.HTTPError as exc:
        response = exc
    digest = hashlib.sha256()
    size = 0
    with response:
        status = response.status
        content_type = response.headers.get("Content-Type", "")
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"The response is larger than {max_bytes} bytes.")
            digest.update(chunk)
    if status != expect_status:
        raise RuntimeError(f"{url} answered HTTP {status}, expected {expect_status}.")
    return {
        "url": url,
        "status": status,
        "bytes": size,
        "sha256": digest.hexdigest(),
        "content_type": content_type,
        "seconds": round(time.monotonic() - started, 3),
    }

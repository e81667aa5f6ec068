"""Where the commands' AWS calls go: the SDK's own choice, or `--endpoint-url` (moto, offline).

Against an endpoint on this machine (a loopback address: `make serve`'s moto) nothing checks a
signature and the stack lives in moto's us-east-1, but botocore still wants a region and
credentials before it sends anything: without them every command failed with NoRegionError, then
NoCredentialsError. So with a loopback endpoint the region defaults to us-east-1 and, when none
are configured, dummy credentials are used (the instance metadata service is not asked: there is
none behind moto, and asking it costs seconds). A region or credentials that are configured
(environment, profile, `--region`) are kept. Any other endpoint is used as the SDK would.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlparse

import boto3
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

OFFLINE_REGION = "us-east-1"  # where the offline stack is deployed (tools/moto_server)
DUMMY_KEY = "redeliver-offline"  # not a secret: moto accepts any key


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine: localhost, 127.0.0.0/8 or ::1. The host as botocore
    connects to it (urllib3) and as urllib.parse reads it must both be one, and a URL with
    userinfo is not: the two split `http://HOST\\@127.0.0.1` differently (urllib3: HOST)."""
    parsed = urlparse(url)
    if "@" in parsed.netloc or "\\" in url:
        return False
    try:
        connected = (parse_url(url).host or "").strip("[]")
    except LocationParseError:
        return False
    return _loopback_host(parsed.hostname or "") and _loopback_host(connected)


def _loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def use_endpoint(endpoint_url: str | None, region: str | None) -> None:
    """Point every client made after this at `endpoint_url` (botocore reads AWS_ENDPOINT_URL),
    in `region`; with a loopback endpoint, supply the region and credentials moto does not check
    when none are configured (module docstring)."""
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    if not endpoint_url:
        return
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    if not is_loopback(endpoint_url):
        return
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    session = boto3.session.Session()
    if not session.region_name:
        os.environ["AWS_DEFAULT_REGION"] = OFFLINE_REGION
    if session.get_credentials() is None:
        os.environ["AWS_ACCESS_KEY_ID"] = DUMMY_KEY
        os.environ["AWS_SECRET_ACCESS_KEY"] = DUMMY_KEY

"""Test peers for the auth tests: moto's STS on loopback and multi-account config files."""

from __future__ import annotations

import json
import uuid
import urllib.request
from pathlib import Path
from typing import Any

ROLE_ARN = "arn:aws:iam::123456789012:role/SellingPartnerRole"


class MotoSts:
    """moto's server (ThreadedMotoServer) on loopback with IAM authentication switched on.

    `good` keys may assume any role; `denied` keys belong to a user without that permission.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self.good: tuple[str, str] = ("", "")
        self.denied: tuple[str, str] = ("", "")

    def start(self) -> MotoSts:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self._auth("inf")  # users and keys are created before authentication is enforced
        self.good = self._user("spd-good", allow_assume=True)
        self.denied = self._user("spd-denied", allow_assume=False)
        self._auth("0")
        return self

    def stop(self) -> None:
        self._auth("inf")
        self._server.stop()

    def _auth(self, count: str) -> None:
        """moto's /moto-api/reset-auth: authenticate every request after `count` more."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=count.encode(),
                                     headers={"Content-Type": "text/plain"}, method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def _user(self, name: str, *, allow_assume: bool) -> tuple[str, str]:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.url, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        name = f"{name}-{uuid.uuid4().hex[:8]}"  # moto's backends are shared by the process
        iam.create_user(UserName=name)
        if allow_assume:
            policy = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
            iam.put_user_policy(UserName=name, PolicyName="assume",
                                PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    @staticmethod
    def credentials(access_key_id: str) -> Any:
        """What moto's STS issued for `access_key_id` (the simulator's credential source)."""
        from datetime import timezone

        from moto.sts.models import sts_backends

        from spd.sim.sigv4 import AwsCredential

        for backends in list(sts_backends.values()):
            for backend in list(backends.values()):
                role = backend.get_assumed_role_from_access_key(access_key_id)
                if role is not None:
                    expires = role.expiration
                    if expires.tzinfo is None:
                        expires = expires.replace(tzinfo=timezone.utc)
                    return AwsCredential(role.secret_access_key, role.session_token,
                                         expires.timestamp())
        return None


def account_yaml(name: str, sim_url: str, *, refresh_token: str = "test-refresh-token",
                 client_secret: str = "test-secret-value", token_url: str | None = None,
                 aws: dict[str, str] | None = None) -> list[str]:
    """The lines of one account entry (under `accounts:`)."""
    lines = [
        f"  {name}:",
        f"    endpoint: {sim_url}",
        "    marketplace_ids: [ATVPDKIKX0DER]",
        "    region: us-east-1",
        f"    lwa: {{client_id: test-client, client_secret: {client_secret}, "
        f"refresh_token: \"{refresh_token}\", token_url: {token_url or sim_url + '/auth/o2/token'}}}",
    ]
    if aws:
        lines.append("    aws: {" + ", ".join(f"{k}: \"{v}\"" for k, v in aws.items()) + "}")
    return lines


def write_accounts_config(tmp_path: Path, accounts: list[list[str]],
                          pollers: dict[str, dict[str, Any]]) -> Path:
    """A config with the given accounts, a file emitter and the given pollers."""
    lines = [f"state: {{path: {tmp_path / 'state.db'}}}", "log: {level: info, format: json}",
             "accounts:"]
    for account in accounts:
        lines += account
    lines += ["emitters:", f"  archive: {{type: file, path: \"{tmp_path / 'out'}/{{poller}}.jsonl\"}}",
              "pollers:"]
    for name, poller in pollers.items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {v}" for k, v in poller.items()]
        lines.append("    emitters: [archive]")
    path = tmp_path / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path

"""Schemathesis hook: signs every GET the way medledger-client does, so the contract check
reaches past authentication.

`Authorization: MedLedger key=<hex>, ts=<ms>, nonce=<u64>, sig=<hex>`, where `sig` is the
ed25519 signature, under the namespace `medledger/api-request/v1`, of the canonical
`ApiRequest` (chain id, method, path with query, timestamp, nonce; strings are u32 big-endian
length prefixed, integers u64 big-endian). The signing key is the key file named by
MEDLEDGER_AUTH_KEY (the devnet's regulator, who may see everything).

The signature is made on the prepared request (a `requests` auth), so it covers the exact
path and query string sent on the wire.
"""

import json
import os
import secrets
import struct
import time

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

NAMESPACE = b"medledger/api-request/v1"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


class MedLedgerAuth(requests.auth.AuthBase):
    def __init__(self, key_file: str, chain_id: str):
        with open(key_file) as f:
            kf = json.load(f)
        self.sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(kf["secret_key"]))
        pk = self.sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        if pk != kf["public_key"]:
            raise ValueError(f"{key_file}: the secret key does not match its public key")
        self.pk = pk
        self.chain_id = chain_id.encode()

    def __call__(self, r):
        if r.method != "GET":
            return r
        ts = int(time.time() * 1000)
        nonce = secrets.randbits(64)
        msg = _str(self.chain_id) + _str(b"GET") + _str(r.path_url.encode()) + struct.pack(">QQ", ts, nonce)
        sig = self.sk.sign(_varint(len(NAMESPACE)) + NAMESPACE + msg).hex()
        r.headers["Authorization"] = f"MedLedger key={self.pk}, ts={ts}, nonce={nonce}, sig={sig}"
        return r


schemathesis.auth.set_from_requests(
    MedLedgerAuth(os.environ["MEDLEDGER_AUTH_KEY"], os.environ.get("MEDLEDGER_CHAIN_ID", "medledger-devnet"))
)

"""An independent sender for Clarion's push service tests: pywebpush, used as its README shows.

    python pywebpush_send.py keys
        prints {"public_key": <base64url 65 bytes>, "private_pem": <PEM>}
    python pywebpush_send.py send <subscription JSON> <payload> <private PEM> <subject>
        sends one notification with TTL 120 and prints {"status": <HTTP status>};
        exits 1 when the push service refused it
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush


def keys():
    vapid = Vapid02()
    vapid.generate_keys()
    raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    print(json.dumps({
        "public_key": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "private_pem": vapid.private_pem().decode(),
    }))


def send(subscription, payload, private_pem, subject):
    vapid = Vapid02.from_pem(private_pem.encode())
    try:
        response = webpush(json.loads(subscription), payload, vapid_private_key=vapid, vapid_claims={"sub": subject}, ttl=120)
    except WebPushException as error:
        status = error.response.status_code if error.response is not None else None
        print(json.dumps({"status": status, "error": str(error)}))
        sys.exit(1)
    print(json.dumps({"status": response.status_code}))


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    keys() if mode == "keys" else send(*args)

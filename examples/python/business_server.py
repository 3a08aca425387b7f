#!/usr/bin/env python3
"""A showcall business server in Python (grpcio): what an app's backend does with the admin API.

* It mints a token for a host and one for a viewer and prints them, as a backend hands tokens to its apps.
* It watches its app's business events and reacts: members joining and leaving channels (with the seed's
  codes 103/104 broadcaster, 105/106 audience) and, for every ended call, a billing line — call, caller,
  callee, connected seconds, the price at a per-minute rate (every started minute is billed) and why the
  call ended.
* It keeps the cursor of the last event it handled; when the stream drops it watches again after that
  cursor, so it neither misses nor repeats an event.

Every request carries an admin token (`authorization: Bearer <JWT>`): HS256, signed with the secret of one of
the app's API keys (config `apps[].api_keys`), `iss` = the key id, valid for five minutes. The key and
secret come from --api-key and the SHOWCALL_API_SECRET environment variable (a secret does not belong on a
command line); the defaults are the demo app's public ones.

Every line it prints is one JSON object: a person can read it, a program (or a test) can parse it.

The gRPC stubs are generated from proto/admin/v1/admin.proto when it starts (grpc_tools.protoc, into a
temporary directory), so they always match the contract and nothing generated is kept in the repository.

    python3 -m venv .venv && .venv/bin/pip install -r examples/python/requirements.txt
    SHOWCALL_API_SECRET=... .venv/bin/python examples/python/business_server.py --addr 127.0.0.1:7801 \
        --app-id demo --api-key demo-key

The end-to-end test tests/tests/python_business_server.rs runs it against a real node.
"""

import argparse
import contextlib
import importlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import os

import grpc
import jwt
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
ADMIN_PROTO = "admin/v1/admin.proto"

# Errors that retrying cannot fix: a wrong app id, a server without this API. Any other error, and a
# stream the server closes, is a dropped connection: watch again after the last cursor.
FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
}


# The built-in demo app's API key secret (public: it is in showcall's source). Production sets its own.
DEMO_API_SECRET = "showcall-demo-api-secret-change-me"


class AdminToken:
    """Signs short-lived admin tokens with one API key, and reuses each until a minute before it expires."""

    TTL_SECONDS = 300

    def __init__(self, key_id, secret):
        self.key_id, self.secret = key_id, secret
        self.token, self.expires = None, 0

    def metadata(self):
        now = int(time.time())
        if self.expires - now < 60:
            self.expires = now + self.TTL_SECONDS
            claims = {"iss": self.key_id, "iat": now, "exp": self.expires}
            self.token = jwt.encode(claims, self.secret, algorithm="HS256")
        return [("authorization", f"Bearer {self.token}")]


def load_admin_api(proto_root):
    """Generates the admin API's Python stubs from the .proto and imports them (the files go once loaded)."""
    with tempfile.TemporaryDirectory(prefix="showcall-stubs-") as out:
        args = ["protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}", ADMIN_PROTO]
        if protoc.main(args) != 0:
            sys.exit(f"protoc could not compile {proto_root / ADMIN_PROTO}")
        sys.path.insert(0, out)
        try:
            pb = importlib.import_module("admin.v1.admin_pb2")
            return pb, importlib.import_module("admin.v1.admin_pb2_grpc")
        finally:
            sys.path.remove(out)


def emit(kind, **fields):
    # Flushed at once: whoever reads this (a log shipper, a test) sees each line when it happens.
    print(json.dumps({"type": kind, **fields}), flush=True)


def mint_tokens(admin, pb, args, auth):
    """Tokens for the host (may broadcast in its live room) and a viewer (may watch it). Call channels
    need no grant: the node admits exactly the call's two participants."""
    live_room = f"{args.host}_live"
    for user, publish in [(args.host, True), (args.viewer, False)]:
        reply = admin.MintToken(
            pb.MintTokenRequest(
                app_id=args.app_id, user_id=user, ttl_seconds=args.ttl, channel=live_room, publish=publish
            ),
            timeout=30,
            wait_for_ready=True,  # the node may still be starting
            metadata=auth.metadata(),
        )
        emit("token", user_id=user, channel=live_room, token=reply.token, expires_at=reply.expires_at)


def billing_line(ended, price_per_minute):
    """The billing record of one call: every started minute of connected time is paid."""
    minutes = math.ceil(ended.connected_duration_ms / 60_000)
    return {
        "call_id": ended.call_id,
        "caller": ended.caller_user_id,
        "callee": ended.callee_user_id,
        "connected_seconds": ended.connected_duration_ms / 1000,
        "price": minutes * price_per_minute,
        "end_reason": ended.end_reason,
        "ended_by": ended.ended_by_user_id,
    }


def handle(event, price_per_minute):
    """Reacts to one event; returns True when it was a call's end (its billing record)."""
    kind = event.WhichOneof("kind")
    if kind in ("member_joined", "member_left"):
        m = getattr(event, kind)
        emit(kind, cursor=event.cursor, channel=m.channel, user_id=m.user_id, seed_code=m.seed_code)
    elif kind == "call_ended":
        emit("billing", cursor=event.cursor, **billing_line(event.call_ended, price_per_minute))
        return True
    else:
        # Presence, pauses and the call's other steps: a real server would update its own records here.
        emit(kind, cursor=event.cursor)
    return False


def watch(admin, pb, args, auth):
    """Watches events for ever (or until --exit-after-calls calls ended), resuming after the last cursor."""
    cursor = args.after_cursor  # None: only what happens from now on
    calls_ended = 0
    while True:
        stream = admin.WatchEvents(
            pb.WatchEventsRequest(app_id=args.app_id, after_cursor=cursor),
            wait_for_ready=True,  # while the node is unreachable, wait for it rather than fail
            metadata=auth.metadata(),  # checked when the watch opens: a long watch outlives its token
        )
        try:
            stream.initial_metadata()  # the node answers once it is subscribed: nothing after is lost
            emit("watching", after_cursor=cursor)
            for event in stream:
                if handle(event, args.price_per_minute):
                    calls_ended += 1
                cursor = event.cursor  # handled: a reconnect resumes after it
                if args.exit_after_calls and calls_ended >= args.exit_after_calls:
                    stream.cancel()
                    return
            # The node closed the stream (it is shutting down, say): the same as a drop.
            emit("stream_dropped", code="closed by the node", after_cursor=cursor)
        except grpc.RpcError as error:
            if error.code() in FATAL:
                sys.exit(f"watch refused: {error.code().name}: {error.details()}")
            if error.code() == grpc.StatusCode.OUT_OF_RANGE:
                # The node no longer keeps events after our cursor: some were missed. A real server would
                # reconcile from the API here; this one goes on from now.
                emit("events_missed", after_cursor=cursor)
                cursor = None
            else:
                emit("stream_dropped", code=error.code().name, after_cursor=cursor)
        time.sleep(args.retry_seconds)  # a pause before reconnecting, so a failing node is not hammered


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:7801", help="a node's business API (gRPC) address")
    parser.add_argument("--app-id", default="demo", help="the app whose tokens and events these are")
    parser.add_argument("--api-key", default="demo-key", help="the API key id (secret: $SHOWCALL_API_SECRET)")
    parser.add_argument("--host", default="host", help="the host's user id")
    parser.add_argument("--viewer", default="viewer", help="the viewer's user id")
    parser.add_argument("--ttl", type=int, default=3600, help="token lifetime, seconds")
    parser.add_argument("--price-per-minute", type=int, default=100, help="coins per started minute")
    parser.add_argument("--after-cursor", type=int, help="resume after this cursor (default: from now)")
    parser.add_argument("--exit-after-calls", type=int, default=0, help="exit after billing N calls")
    parser.add_argument("--retry-seconds", type=float, default=1.0, help="pause before reconnecting")
    parser.add_argument("--proto-root", type=Path, default=PROTO_ROOT, help="where admin/v1/admin.proto is")
    return parser.parse_args()


def main():
    args = parse_args()
    pb, pb_grpc = load_admin_api(args.proto_root)
    auth = AdminToken(args.api_key, os.environ.get("SHOWCALL_API_SECRET", DEMO_API_SECRET))
    with grpc.insecure_channel(args.addr) as channel:
        admin = pb_grpc.AdminStub(channel)
        try:
            mint_tokens(admin, pb, args, auth)
        except grpc.RpcError as error:
            sys.exit(f"minting refused: {error.code().name}: {error.details()}")
        watch(admin, pb, args, auth)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it quietly
        main()

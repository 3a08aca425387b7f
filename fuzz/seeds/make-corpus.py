#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/, from the material in fuzz/seeds/.

Run it from anywhere: `python3 fuzz/seeds/make-corpus.py` (needs protoc, which the build needs anyway).
Each seed is a valid input a real client, business server, peer node or operator sends, so the fuzzers
start deep in each parser instead of at its first byte. Regression inputs (crashes found and fixed) are
committed in fuzz/corpus/<target>/ by hand, named `regression-*`; this script leaves them alone.

Material in fuzz/seeds/:
- chrome-*.sdp: Chromium 156 (headless) offers, send-receive and receive-only, and its answer to the
  router's re-offer (str0m-router-offer.sdp).
- str0m-*.sdp: the router's re-offer and the answers of a str0m client (as the Rust SDK makes them),
  printed by `SHOWCALL_PRINT_SDP=1 cargo test -p showcall-media --features fuzzing fuzzing`.
- *-snapshot.json: a user session (online, away) and a connected call as the machines snapshot them for
  a partition handoff (serde_json of `UserMachine::snapshot` / `CallMachine::handoff_snapshot`).
"""

import base64
import hashlib
import hmac
import json
import pathlib
import subprocess

SEEDS = pathlib.Path(__file__).resolve().parent
FUZZ = SEEDS.parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"

# The fuzz targets' fixed clock and key (fuzz_targets/auth_token.rs, admin_request.rs).
NOW = 1_700_000_000
SECRET = b"demo-secret-0123456789"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


def encode(proto, message, text):
    """A protobuf message from its text format, through protoc."""
    return subprocess.run(
        ["protoc", f"-I{ROOT / 'proto'}", f"--encode={message}", proto],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, header=None, secret=SECRET):
    header = header or {"typ": "JWT", "alg": "HS256"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(sub="42", channel=None, publish=False, subscribe=False, iat=NOW - 10, exp=NOW + 3600):
    grants = {"signal": True, "publish": publish, "subscribe": subscribe}
    if channel is not None:
        grants["channel"] = channel
    return {"app": "demo", "sub": sub, "iat": iat, "exp": exp, "grants": grants}


def sdp(name):
    return (SEEDS / name).read_text()


def snapshot(name):
    return json.loads((SEEDS / name).read_text())


def signal_frames():
    viewer = token(claims("viewer-7", channel="*", subscribe=True))
    frames = {
        "login": {"requestId": "1", "login": {"token": viewer}},
        "renew_token": {"requestId": "2", "renewToken": {"token": viewer}},
        "prepare": {
            "requestId": "3",
            "prepareForCall": {
                "roomId": "host-1_live",
                "userExtension": {"nick": "Alice"},
                "callTimeoutMs": 30000,
            },
        },
        "call": {
            "requestId": "4",
            "call": {
                "remoteUserId": "host-1",
                "callType": "CALL_TYPE_VIDEO",
                "callExtension": {"gift": "rose"},
                "callTimeoutMs": 20000,
                "traceparent": TRACEPARENT,
            },
        },
        "accept": {"requestId": "5", "accept": {"callId": "0123456789abcdef0123456789abcdef"}},
        "reject": {
            "requestId": "6",
            "reject": {"callId": "0123456789abcdef0123456789abcdef", "reason": "busy"},
        },
        "hangup": {
            "requestId": "7",
            "hangup": {"callId": "0123456789abcdef0123456789abcdef", "reason": "bye"},
        },
        "join_live": {
            "requestId": "8",
            "joinChannel": {
                "channel": "host-1_live",
                "role": "CHANNEL_ROLE_AUDIENCE",
                "sdpOffer": sdp("chrome-recvonly-offer.sdp"),
            },
        },
        "answer_media": {
            "requestId": "9",
            "answerMedia": {
                "channel": "host-1_live",
                "sdpAnswer": sdp("chrome-answer.sdp"),
                "revision": "2",
            },
        },
        "restart_ice": {
            "requestId": "13",
            "restartIce": {
                "channel": "host-1_live",
                "sdpOffer": sdp("chrome-recvonly-offer.sdp"),
            },
        },
        "leave": {"requestId": "10", "leaveChannel": {"channel": "host-1_live"}},
        "ping": {"requestId": "11", "ping": {}},
        "logout": {"requestId": "12", "logout": {}},
    }
    for name, frame in frames.items():
        write("signal_frame", f"{name}.json", json.dumps(frame))
    # The same frames in the binary encoding the Rust SDK sends.
    binary = {
        "login": f'request_id: 1 login {{ token: "{viewer}" }}',
        "call": (
            'request_id: 4 call { remote_user_id: "host-1" call_type: CALL_TYPE_AUDIO '
            'call_extension { key: "gift" value: "rose" } call_timeout_ms: 20000 '
            f'traceparent: "{TRACEPARENT}" }}'
        ),
        "hangup": 'request_id: 7 hangup { call_id: "0123456789abcdef0123456789abcdef" reason: "bye" }',
        "join_broadcaster": (
            'request_id: 8 join_channel { channel: "host-1_live" role: CHANNEL_ROLE_BROADCASTER '
            f"sdp_offer: {json.dumps(sdp('chrome-offer.sdp'))} }}"
        ),
        "prepare": (
            'request_id: 3 prepare_for_call { room_id: "r" user_extension { key: "k" value: "v" } '
            "call_timeout_ms: 0 first_frame_waiting_disabled: true }"
        ),
    }
    for name, text in binary.items():
        write(
            "signal_frame",
            f"{name}.bin",
            encode("signal/v1/signal.proto", "showcall.signal.v1.ClientFrame", text),
        )


def auth_tokens():
    write("auth_token", "viewer.jwt", token(claims("viewer-7", channel="*", subscribe=True)))
    write("auth_token", "host.jwt", token(claims("host-1", channel="host-1_live", publish=True)))
    write("auth_token", "expired.jwt", token(claims(iat=NOW - 7200, exp=NOW - 3600)))
    write("auth_token", "forged.jwt", token(claims(), secret=b"not-the-real-secret-at-all"))
    write("auth_token", "hs512.jwt", token(claims(), header={"typ": "JWT", "alg": "HS512"}))
    # `<header JSON>\n<claims JSON>`: the target signs them with the demo secret.
    header = json.dumps({"typ": "JWT", "alg": "HS256"})
    write("auth_token", "signed-valid.txt", f"{header}\n{json.dumps(claims(channel='room-1'))}")
    write("auth_token", "signed-bad-user.txt", f"{header}\n{json.dumps(claims(sub='has space'))}")


def admin_requests():
    requests = [
        (0, "MintTokenRequest", 'app_id: "demo" user_id: "42" ttl_seconds: 3600 channel: "*" publish: true'),
        (1, "GetUserRequest", 'app_id: "demo" user_id: "host-1"'),
        (2, "ListUsersRequest", 'app_id: "demo" page_size: 50 page_token: "686f73742d31"'),
        (3, "ListChannelsRequest", 'app_id: "demo" page_size: 0'),
        (4, "GetChannelRequest", 'app_id: "demo" channel: "host-1_live"'),
        (
            5,
            "KickUserRequest",
            'app_id: "demo" channel: "host-1_live" user_id: "viewer-7" ban_seconds: 600 ban_join: true',
        ),
        (6, "UnbanUserRequest", 'app_id: "demo" channel: "host-1_live" user_id: "viewer-7"'),
        (7, "GetCallRequest", 'app_id: "demo" call_id: "0123456789abcdef0123456789abcdef"'),
        (8, "EndCallRequest", 'app_id: "demo" call_id: "0123456789abcdef0123456789abcdef" reason: "fraud"'),
        (9, "WatchEventsRequest", 'after_cursor: 42 app_id: "demo"'),
    ]
    for rpc, message, text in requests:
        body = encode("admin/v1/admin.proto", f"showcall.admin.v1.{message}", text)
        write("admin_request", f"{rpc}-{message}.bin", bytes([rpc]) + body)


def node_envelopes():
    reply_to = {"node": "node-a", "id": 3}
    bodies = {
        "reply": {"Reply": {"id": 7, "result": {"Ok": "Done"}}},
        "user_command": {
            "User": {
                "app": "demo",
                "user": "viewer-7",
                "msg": {
                    "Command": {
                        "conn": 12,
                        "command": {
                            "JoinChannel": {
                                "channel": "host-1_live",
                                "role": "Audience",
                                "may_publish": False,
                                "offer": sdp("chrome-recvonly-offer.sdp"),
                            }
                        },
                        "reply": reply_to,
                    }
                },
            }
        },
        "call_command": {
            "User": {
                "app": "demo",
                "user": "host-1",
                "msg": {
                    "Command": {
                        "conn": 4,
                        "command": {
                            "CallCommand": {
                                "call_id": "c1",
                                "command": {"Hangup": {"reason": "bye"}},
                            }
                        },
                        "reply": reply_to,
                    }
                },
            }
        },
        "connection_lost": {
            "User": {"app": "demo", "user": "host-1", "msg": {"ConnectionLost": {"conn": 4}}}
        },
        "sink_moved": {"SinkMoved": {"id": 9}},
        "handoff": {
            "Handoff": {
                "handoff": {
                    "users": [
                        {
                            "app": "demo",
                            "snapshot": snapshot("user-online-snapshot.json"),
                            "sinks": [[7, {"node": "node-a", "id": 11}]],
                            "online": True,
                        },
                        {
                            "app": "demo",
                            "snapshot": snapshot("user-away-snapshot.json"),
                            "sinks": [],
                            "online": True,
                        },
                    ],
                    "calls": [{"app": "demo", "snapshot": snapshot("call-handoff-snapshot.json")}],
                },
                "reply": reply_to,
            }
        },
    }
    for name, body in bodies.items():
        payload = json.dumps({"from": "node-a", "hops": 1, "body": body})
        text = (
            f'from_node: "node-a" actor_key: "{name}" payload: {json.dumps(payload)} '
            f'trace_context {{ key: "traceparent" value: "{TRACEPARENT}" }}'
        )
        write("node_envelope", f"{name}.bin", encode("node/v1/node.proto", "showcall.node.v1.Envelope", text))


def media_sdps():
    for name in sorted(SEEDS.glob("*.sdp")):
        write("media_sdp", name.name, name.read_bytes())


def node_configs():
    write("node_config", "compose.toml", (ROOT / "deploy/compose/showcall.toml").read_bytes())
    write(
        "node_config",
        "full.toml",
        """node_id = "node-1"
signal_addr = "127.0.0.1:7800"
grpc_addr = "127.0.0.1:7801"
http_addr = "127.0.0.1:7802"
media_addr = "127.0.0.1:7803"
media_workers = 2
grace_period = "45s"
call_timeout = "20s"
pause_live_at = "ringing"
max_frame_bytes = 32768
billing_tick = "60s"
call_policy_timeout = "2s"

[rate_limit]
per_second = 20
burst = 40

[webhooks]
attempt_timeout = "5s"
initial_backoff = "1s"
max_backoff = "1m"
max_attempts = 8

[[apps]]
id = "shop"
secret = "shop-secret-0123456789"
call_policy_url = "http://127.0.0.1:9000"
webhook_url = "https://example.invalid/hooks"
webhook_secret = "hook-secret-0123456789"
""",
    )
    write(
        "node_config",
        "cluster-with-env.toml",
        """node_id = "node-2"
etcd_endpoints = ["http://127.0.0.1:2379"]
grpc_advertise_addr = "127.0.0.1:7811"

[[apps]]
id = "demo"
secret = "demo-secret-0123456789"
"""
        + "\0SHOWCALL_GRACE_PERIOD=10s\nSHOWCALL_ETCD_ENDPOINTS=http://127.0.0.1:2379,http://127.0.0.1:2380\n"
        + "SHOWCALL_RATE_LIMIT__BURST=5\n",
    )


if __name__ == "__main__":
    signal_frames()
    auth_tokens()
    admin_requests()
    node_envelopes()
    media_sdps()
    node_configs()
    for target in sorted(CORPUS.iterdir()):
        print(f"{target.name}: {len(list(target.iterdir()))} seeds")

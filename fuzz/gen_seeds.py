#!/usr/bin/env python3
"""Regenerates fuzz/seeds/<target>/ from the golden vectors and fixtures.

Run from anywhere: python3 fuzz/gen_seeds.py. Output is deterministic; the
seeds are committed, so this only needs rerunning when the vectors change.
Envelopes and Streamr messages are built here (a tiny deterministic CBOR and
protobuf writer) from the Streamr vector's fields; their signatures need not
verify for the decoders to accept them.
"""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def read_json(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return json.load(f)


def unhex(s):
    return bytes.fromhex(s.strip().removeprefix("0x"))


# --- deterministic CBOR (only what an envelope needs) -----------------------
def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | extra]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(v):
    if isinstance(v, int):
        return head(0, v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(i) for i in v)
    if isinstance(v, dict):
        items = sorted((cbor(k), cbor(x)) for k, x in v.items())
        return head(5, len(items)) + b"".join(k + x for k, x in items)
    raise TypeError(v)


def skip_item(b, i):
    """Index just past the well-formed, definite-length CBOR item at b[i]."""
    major, info = b[i] >> 5, b[i] & 31
    i += 1
    if info < 24:
        n = info
    else:
        size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        n = int.from_bytes(b[i:i + size], "big")
        i += size
    if major in (2, 3):
        return i + n
    if major == 4:
        for _ in range(n):
            i = skip_item(b, i)
    elif major == 5:
        for _ in range(2 * n):
            i = skip_item(b, i)
    elif major == 6:
        i = skip_item(b, i)
    return i


def batch_events(b):
    """The encoded events of a batch {0: schema, 1: cert, 2: [events]}."""
    i = skip_item(b, 2)  # past map head, key 0 and its value
    i = skip_item(b, i + 1)  # past key 1 and its value
    assert b[i] == 0x02
    i += 1
    major, info = b[i] >> 5, b[i] & 31
    assert major == 4 and info < 24
    i += 1
    out = []
    for _ in range(info):
        end = skip_item(b, i)
        out.append(b[i:end])
        i = end
    return out


# --- protobuf (StreamMessage, as prost writes it) ---------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_int(tag, n):
    return varint(tag << 3) + varint(n) if n else b""


def pb_bytes(tag, b, always=False):
    return varint(tag << 3 | 2) + varint(len(b)) + b if b or always else b""


def stream_message(env, content_type=1):
    mid = (pb_bytes(1, env["stream_id"].encode()) + pb_int(2, env["partition"])
           + pb_int(3, env["timestamp"]) + pb_int(4, env["seq"])
           + pb_bytes(5, env["publisher"]) + pb_bytes(6, env["msg_chain_id"].encode()))
    out = pb_bytes(1, mid, always=True)
    if env.get("prev"):
        t, s = env["prev"]
        out += pb_bytes(2, pb_int(1, t) + pb_int(2, s), always=True)
    out += pb_bytes(3, env["signature"]) + pb_int(4, 1)
    body = pb_bytes(1, env["content"]) + pb_int(2, content_type)
    return out + pb_bytes(5, body, always=True)


def envelope_cbor(env):
    m = {0: 1, 1: env["stream_id"], 2: env["partition"], 3: env["timestamp"], 4: env["seq"],
         5: env["publisher"], 6: env["msg_chain_id"], 8: env["content"], 9: env["signature"]}
    if env.get("prev"):
        m[7] = list(env["prev"])
    return cbor(m)


def main():
    seeds = {}

    def add(target, name, data):
        seeds.setdefault(target, {})[name] = data if isinstance(data, bytes) else data.encode()

    # Batches and events: the golden batch vector.
    with open(os.path.join(ROOT, "schemas", "vectors", "batch-1.cbor.hex")) as f:
        batch = unhex(f.read())
    add("batch", "batch-1.cbor", batch)
    for n, ev in enumerate(batch_events(batch)):
        add("event_cbor", f"batch-1-event-{n}.cbor", ev)

    # go-livepeer Kafka JSON: each sample alone, and the whole file.
    samples = read_json("schemas", "tests", "data", "go-livepeer-kafka-samples.json")
    for n, s in enumerate(samples):
        add("event_json", f"sample-{n}-{s['type']}.json", json.dumps(s, separators=(",", ":")))
    with open(os.path.join(ROOT, "schemas", "tests", "data", "go-livepeer-kafka-samples.json"),
              "rb") as f:
        add("event_json", "samples.json", f.read())

    # Envelopes: the Streamr vector (its signature verifies) and one carrying batch-1.
    sv = read_json("schemas", "vectors", "streamr-signature.json")
    streamr_env = {
        "stream_id": sv["stream_id"], "partition": sv["partition"], "timestamp": sv["timestamp"],
        "seq": sv["seq"], "publisher": unhex(sv["publisher"]), "msg_chain_id": sv["msg_chain_id"],
        "prev": sv["prev"], "content": sv["content_utf8"].encode(),
        "signature": unhex(sv["signature"]),
    }
    batch_env = dict(streamr_env, stream_id=sv["publisher"] + "/livepeer/telemetry",
                     partition=7, seq=3, prev=None, content=batch)
    add("envelope", "streamr-vector.cbor", envelope_cbor(streamr_env))
    add("envelope", "batch-1.cbor", envelope_cbor(batch_env))
    add("streamr", "streamr-vector-json.pb", unhex(sv["stream_message_hex"]))
    add("streamr", "streamr-vector-binary.pb", stream_message(streamr_env))
    add("streamr", "batch-1.pb", stream_message(batch_env))

    # Certificates, revocations and their wallet JSON.
    dv = read_json("delegation", "tests", "vectors", "delegation.json")
    add("certificate", "delegation.cbor", unhex(dv["delegation"]["cbor"]))
    add("revocation", "revocation.cbor", unhex(dv["revocation"]["cbor"]))
    for kind in ("delegation", "revocation"):
        doc = dv[kind]["wallet_json"]
        add("wallet_json", f"{kind}.json", json.dumps(doc, indent=2))
        add("wallet_json", f"{kind}-compact.json", json.dumps(doc, separators=(",", ":")))

    # Every CBOR seed also seeds the generic CBOR reader.
    for target in ("batch", "event_cbor", "envelope", "certificate", "revocation"):
        for name, data in seeds[target].items():
            add("cbor", f"{target}-{name}", data)

    # Authority snapshots (shapes from snapshot.rs's tests).
    a, b = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1", "0x1111111111111111111111111111111111111111"
    add("snapshot", "two-principals.json", json.dumps({
        "source": "chain:42161@1", "note": "demo", "principals": [
            {"address": a, "roles": ["orchestrator", "Gateway"], "stake": "123"},
            {"address": b, "roles": ["gateway"]},
            {"address": a.lower(), "roles": ["verifier"], "stake": "7"}]}, indent=2))
    add("snapshot", "minimal.json", '{"principals":[]}')

    # Hex key files.
    add("hex_key", "key-one.hex", dv["principal_key"] + "\n")
    add("hex_key", "bare-upper.hex", "  0X" + "AB" * 32 + "\t")
    add("hex_key", "no-prefix.hex", "fe" * 31 + "ff")

    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    total = 0
    for target, files in sorted(seeds.items()):
        os.makedirs(os.path.join(SEEDS, target))
        for name, data in sorted(files.items()):
            with open(os.path.join(SEEDS, target, name), "wb") as f:
                f.write(data)
            total += len(data)
    print(f"wrote {sum(map(len, seeds.values()))} seeds, {total} bytes, under {SEEDS}")


if __name__ == "__main__":
    main()

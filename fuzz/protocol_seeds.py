#!/usr/bin/env python3
"""Writes the named seeds of the client_packet and server_request fuzz
targets into fuzz/corpus/<target>/ (the input layouts are documented on
mcast_tests::fuzz_checks::client_packet and ::server_request, in
tests/src/fuzz_checks/). Run from anywhere: python3 fuzz/protocol_seeds.py
It overwrites the named seeds and leaves the fuzzer's files alone; rerun it
when a layout changes. See docs/FUZZING.md."""
import json, os, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
man = json.load(open(os.path.join(ROOT, 'tests/data/vectors/manifest.json')))
vectors = [(v['name'], bytes.fromhex(v['udp_payload_hex']), v['src'], v['expected']['mode']) for v in man['vectors']]

def ms(n):
    assert 0 <= n <= 99
    return n
def tenths(x):   # 0.1 s units, 1..100
    assert 1 <= x <= 100
    return 99 + x
def secs(s):     # even seconds 2..112
    assert s % 2 == 0 and 2 <= s <= 112
    return 199 + s // 2

# ---------------- client_packet ----------------
def c_bcast(src, adv, fix, mac=1, key=None, jitter=0, random=0, data=b'', wrong_port=False):
    op = 0 | (src << 2) | (0x20 if wrong_port else 0) | (mac << 6)
    out = bytes([op, adv, fix])
    if mac >= 2: out += bytes([key])
    if fix & 4: out += bytes([jitter & 0xff])
    out += bytes([random, len(data)]) + data
    return out
def c_reply(src, adv, fix, mac=1, key=None, jitter=0, data=b'', wrong_port=False):
    op = 1 | (src << 2) | (0x20 if wrong_port else 0) | (mac << 6)
    out = bytes([op, adv, fix])
    if mac >= 2: out += bytes([key])
    if fix & 4: out += bytes([jitter & 0xff])
    out += bytes([len(data)]) + data
    return out
def c_tick(adv):
    return bytes([2, adv])
def c_tx(adv, lag):
    return bytes([3, adv, lag])

SANE_BCAST = 0x0d   # mode+version, model timestamps, sane header, poll 6
SANE_REPLY = 0x0f   # + origin = newest request

def volley(servers, requests, reply_mac=1):
    """Requests every 2 s, each answered 2 ms later by every server."""
    ev = b''
    for i in range(requests):
        ev += c_tick(0 if i == 0 else tenths(20))   # every 2 s
        first = True
        for s in servers:
            ev += c_reply(s, ms(2) if first else 0, SANE_REPLY, mac=reply_mac)
            first = False
    # the volley ends one spacing after its last request
    ev += c_tick(tenths(20))
    return ev

def rounds(servers, n, gap=secs(64)):
    ev = b''
    for r in range(n):
        for i, s in enumerate(servers):
            ev += c_bcast(s, gap if i == 0 else 0, SANE_BCAST)
        ev += c_tick(ms(1))
    return ev

client = {}
four = [0, 1, 2, 3]
first = b''.join(c_bcast(s, 0, SANE_BCAST) for s in four)
client['hand-calibrate-track-monitor'] = bytes([0]) + first + volley(four, 6) + rounds(four, 8)
client['hand-calibrate-track-slew-short'] = bytes([0x02 | 0x08]) + first + volley(four, 2) + rounds(four, 8)
client['hand-calibrate-track-step-short'] = bytes([0x04 | 0x08]) + first + volley(four, 2) + rounds(four, 8)
# Discovery of 198.18.0.6 (key 6, clock 700 ms behind): it alone is selected, and stepped.
disc = c_bcast(5, 0, SANE_BCAST)
client['hand-discover-step'] = bytes([0x01 | 0x04 | 0x08]) + disc + volley([5], 2) + rounds([5], 6)
client['hand-discover-slew-only'] = bytes([0x01 | 0x06 | 0x08]) + disc + volley([5], 2) + rounds([5], 6)
client['hand-discover-off'] = bytes([0x08]) + disc + c_tick(secs(10))
# Calibration that gets no reply: every volley, then the fallback.
client['hand-no-reply-fallback'] = bytes([0x08]) + c_bcast(0, 0, SANE_BCAST) + b''.join(c_tick(secs(2)) for _ in range(40)) + rounds([0], 3)
client['hand-no-reply-fallback-full'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST) + b''.join(c_tick(secs(8)) for _ in range(40))
# KoDs echoing the request.
for code, bits in (('rate', 0x00), ('deny', 0x20), ('rstr', 0x40), ('xfuz', 0x60)):
    kod = c_reply(0, ms(2), 0x10 | 0x02 | 0x01 | bits, mac=1)
    client[f'hand-kod-{code}'] = bytes([0x08]) + c_bcast(0, 0, SANE_BCAST) + c_tick(0) + kod + b''.join(c_tick(secs(2)) for _ in range(6)) + rounds([0], 2)
    # Not echoing (origin only): bogus KoD.
    client[f'hand-kod-{code}-bogus'] = bytes([0x08]) + c_bcast(0, 0, SANE_BCAST) + c_tick(0) + c_reply(0, ms(2), 0x10 | 0x01 | bits | 0x08, mac=1) + c_tick(secs(2))
# Replies that fail: unsigned, bad MAC, wrong key, crypto-NAK, unusable, bogus origin, wrong port, unknown source.
base = bytes([0x08]) + c_bcast(0, 0, SANE_BCAST) + c_tick(0)
client['hand-reply-unsigned'] = base + c_reply(0, ms(2), SANE_REPLY, mac=2, key=14) + c_tick(secs(2))
client['hand-reply-bad-mac'] = base + c_reply(0, ms(2), SANE_REPLY, mac=3, key=5) + c_tick(secs(2))
client['hand-reply-wrong-key'] = base + c_reply(0, ms(2), SANE_REPLY, mac=2, key=2) + c_tick(secs(2))
client['hand-reply-crypto-nak'] = base + c_reply(0, ms(2), SANE_REPLY, mac=2, key=15) + c_tick(secs(2))
client['hand-reply-unsynchronized'] = base + c_reply(0, ms(2), 0x07, mac=1) + c_tick(secs(2))
client['hand-reply-bogus-origin'] = base + c_reply(0, ms(2), 0x0d, mac=1)
client['hand-reply-wrong-port'] = base + c_reply(0, ms(2), SANE_REPLY, mac=1, wrong_port=True)
client['hand-reply-unknown-source'] = base + c_reply(4, ms(2), SANE_REPLY, mac=1)
client['hand-reply-twice'] = base + c_reply(0, ms(2), SANE_REPLY, mac=1) + c_reply(0, ms(1), SANE_REPLY, mac=1)
client['hand-reply-oldest'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST) + c_tick(0) + c_tick(secs(2)) + c_reply(0, ms(2), SANE_REPLY | 0x80, mac=1)
client['hand-kernel-transmit'] = base + c_tx(0, 1) + c_reply(0, ms(2), SANE_REPLY) + c_tick(secs(2)) + c_tx(0, 255)
client['hand-unauthenticated-server'] = bytes([0x08]) + c_bcast(3, 0, SANE_BCAST, mac=2, key=14) + c_tick(0) + c_reply(3, ms(2), SANE_REPLY, mac=2, key=14) + c_tick(secs(2)) + c_reply(3, ms(2), SANE_REPLY, mac=2, key=14) + c_tick(secs(2)) + rounds([3], 3)
# Broadcasts rejected by reason.
b0 = c_bcast(0, 0, SANE_BCAST)
client['hand-bcast-no-mac'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=2, key=14)
client['hand-bcast-crypto-nak'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=2, key=15)
client['hand-bcast-wrong-key'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=2, key=2)
client['hand-bcast-unknown-key'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=2, key=11)
client['hand-bcast-key-0'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=2, key=0)
client['hand-bcast-source-not-allowed'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=2, key=13)
client['hand-bcast-bad-mac'] = bytes([0]) + c_bcast(0, 0, SANE_BCAST, mac=3, key=77)
client['hand-bcast-replay'] = bytes([0]) + b0 + c_bcast(0, 0, SANE_BCAST)
client['hand-bcast-too-early'] = bytes([0]) + b0 + c_bcast(0, secs(10), SANE_BCAST)
client['hand-bcast-poll-change'] = bytes([0]) + b0 + b''.join(c_bcast(0, secs(64), 0x0d | (3 << 5)) for _ in range(5))
client['hand-bcast-alarm'] = bytes([0]) + b0 + c_bcast(0, secs(64), SANE_BCAST | 0x10) + c_tick(secs(112))
client['hand-bcast-not-broadcast'] = bytes([0]) + c_bcast(0, 0, 0x0c, mac=1, data=bytes([0x23]) + bytes(47))
client['hand-bcast-bad-format'] = bytes([0]) + c_bcast(0, 0, 0, mac=0, data=b'\x25\x02\x03')
client['hand-bcast-mapped-source'] = bytes([1]) + c_bcast(6, 0, SANE_BCAST)
client['hand-bcast-v6-source'] = bytes([1]) + c_bcast(7, 0, SANE_BCAST)
client['hand-bcast-poll-17'] = bytes([0]) + c_bcast(0, 0, 0x0d | (7 << 5)) + c_tick(secs(112))
client['empty'] = b''
# Vectors, as they are, from their source (198.18.0.N is source N-1 up to .6, else ::1).
def src_index(addr):
    host = addr.rsplit(':', 1)[0]
    n = int(host.split('.')[-1])
    return n - 1 if 1 <= n <= 6 else 7
for name, payload, src, mode in vectors:
    s = src_index(src)
    if mode == 5:
        ev = c_bcast(s, 0, 0, mac=0, data=payload)
    else:
        ev = c_reply(s, 0, 0, mac=0, data=payload)
    client[name] = bytes([0x01]) + ev

# ---------------- server_request ----------------
def s_req(client_i, adv, mac=0, key=None, fix=False, port=False, data=b''):
    op = client_i | (mac << 3) | (0x20 if fix else 0) | (0x40 if port else 0)
    out = bytes([op, adv])
    if mac in (1, 2): out += bytes([key])
    return out + bytes([len(data)]) + data

def header(first, transmit=0xeeaccfa495e34b22, poll=6):
    h = bytearray(48)
    h[0] = first; h[2] = poll & 0xff; h[3] = 0xec
    h[40:48] = struct.pack('>Q', transmit)
    return bytes(h)
REQ = header(0x23)
server = {}
server['empty'] = b''
for name, payload, src, mode in vectors:
    server[name] = bytes([0]) + s_req(0, 0, data=payload)
server['hand-plain'] = bytes([0]) + s_req(0, 0, data=REQ)
server['hand-plain-require-auth'] = bytes([1]) + s_req(0, 0, data=REQ)
for k in range(1, 10):
    server[f'hand-signed-k{k}'] = bytes([0]) + s_req(0, 0, mac=1, key=k, fix=True, data=REQ)
server['hand-signed-k13-allowed'] = bytes([1]) + s_req(0, 0, mac=3, fix=True, data=REQ)
server['hand-signed-k13-not-allowed'] = bytes([1]) + s_req(4, 0, mac=3, fix=True, data=REQ)
server['hand-signed-k13-mapped'] = bytes([1]) + s_req(6, 0, mac=3, fix=True, data=REQ)
server['hand-bad-mac'] = bytes([0]) + s_req(1, 0, mac=2, key=0x31, fix=True, data=REQ)
server['hand-unknown-key'] = bytes([0]) + s_req(1, 0, mac=1, key=11, fix=True, data=REQ)
server['hand-key-0'] = bytes([0]) + s_req(1, 0, mac=1, key=0, fix=True, data=REQ)
server['hand-crypto-nak-in'] = bytes([0]) + s_req(1, 0, mac=1, key=15, fix=True, data=REQ)
server['hand-key-id-only'] = bytes([0]) + s_req(1, 0, data=REQ + struct.pack('>I', 1))
server['hand-short-digest'] = bytes([0]) + s_req(1, 0, data=REQ + struct.pack('>I', 1) + bytes(8))
server['hand-unsynchronized'] = bytes([4]) + s_req(2, 0, mac=1, key=2, fix=True, data=REQ)
ext = struct.pack('>HH', 0x0104, 16) + bytes(12)
server['hand-extension-signed'] = bytes([0]) + s_req(3, 0, mac=1, key=3, data=REQ + ext)
server['hand-extension-plain'] = bytes([0]) + s_req(3, 0, data=REQ + ext + ext)
for m in (0, 1, 2, 4, 5, 6, 7):
    server[f'hand-mode-{m}'] = bytes([0]) + s_req(0, 0, data=header(0x20 | m))
server['hand-mode-7-signed'] = bytes([0]) + s_req(0, 0, mac=1, key=1, data=header(0x27))
for v in (1, 2, 3, 5, 0):
    server[f'hand-version-{v}'] = bytes([0]) + s_req(0, 0, data=header((v << 3) | 3))
server['hand-leap-alarm'] = bytes([0]) + s_req(0, 0, data=header(0xe3))
server['hand-short'] = bytes([0]) + s_req(0, 0, data=b'\x23' * 10)
server['hand-misaligned'] = bytes([0]) + s_req(0, 0, data=REQ + b'\x00\x00\x01')
def burst(n, **kw):
    return b''.join(s_req(0, 0, fix=True, data=REQ, **kw) for _ in range(n))
server['hand-burst-plain'] = bytes([0]) + burst(12)
server['hand-burst-signed'] = bytes([0]) + burst(12, mac=1, key=1)
server['hand-burst-bad-mac'] = bytes([0]) + burst(12, mac=2, key=0x21)
server['hand-burst-unknown-key'] = bytes([0]) + burst(12, mac=1, key=12)
server['hand-burst-nomac-require-auth'] = bytes([1]) + burst(12)
server['hand-burst-kod-off'] = bytes([2]) + burst(12, mac=1, key=2)
server['hand-burst-poll-17'] = bytes([0]) + b''.join(s_req(0, 0, fix=True, data=header(0x23, poll=17)) for _ in range(10))
server['hand-burst-spaced'] = bytes([0]) + b''.join(s_req(0, tenths(15), fix=True, data=REQ) for _ in range(20)) + b''.join(s_req(0, secs(8), fix=True, data=REQ) for _ in range(10))
server['hand-mru-evict'] = bytes([0]) + b''.join(s_req(i, ms(10), fix=True, data=REQ, port=(i % 2 == 1)) for i in range(8)) * 2
server['hand-mru-one'] = bytes([8]) + b''.join(s_req(i, 0, fix=True, data=REQ) for i in (0, 1, 0, 1, 0, 1))

for target, seeds in (('client_packet', client), ('server_request', server)):
    d = os.path.join(ROOT, 'fuzz/corpus', target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
    print(target, len(seeds), 'seeds', sum(len(x) for x in seeds.values()), 'bytes')

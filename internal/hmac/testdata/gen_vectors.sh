#!/usr/bin/env bash
# gen_vectors.sh writes vectors.json, the test vectors for internal/hmac.
#
# It is deliberately independent of the Go code: it follows
# research/kushki-one.md §3 (and the seed's "Authentication" section for the
# hmac mode) with python3's standard library for HMAC-SHA256, MD5, SHA-512 and
# base64, and with `openssl enc -aes-256-cbc` for AES (Python's standard
# library has no AES). Run it from anywhere; it needs python3 and openssl.
#
#   internal/hmac/testdata/gen_vectors.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v openssl >/dev/null || { echo "gen_vectors.sh: openssl not found" >&2; exit 1; }

python3 - <<'PY' > vectors.json.tmp
import base64, datetime, hashlib, hmac, json, subprocess, sys

def aes_cbc(key_hex, iv_hex, plain):
    # openssl applies PKCS#7 padding by default; -K/-iv mean no salt, no KDF.
    out = subprocess.run(
        ["openssl", "enc", "-aes-256-cbc", "-K", key_hex, "-iv", iv_hex],
        input=plain, capture_output=True, check=True)
    return out.stdout

def compact(obj):
    # JSON.stringify-like: no spaces, non-ASCII kept, no HTML escaping.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

def check_compact(body):
    if compact(json.loads(body)) != body:
        sys.exit("body is not in compact form: " + body)

# ---- mode "hmac" (seed "Authentication"): Authorization =
# base64(HMAC-SHA256(key=secret, msg=body bytes)), timestamp in Unix ms.
HMAC_SECRET = "test-private-credential-0001"
hmac_cases = [
    ("charge", "POST", 1774389359123,
     '{"amount":{"subtotal_iva":0,"subtotal_iva0":1500,"iva":0},"client_transaction_id":"pb-0001"}'),
    ("non-ascii", "POST", 1774389400000,
     '{"client_transaction_id":"pb-0002","metadata":{"mesa":"Cañón 7","nota":"café ☕ — 10 €"}}'),
    ("empty-object", "POST", 1774389401999, "{}"),
    ("get-abort", "GET", 1774389402500, None),
]
hmac_out = []
for name, method, now_ms, body in hmac_cases:
    raw = (body or "").encode("utf-8")
    sig = base64.b64encode(hmac.new(HMAC_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    hdr = {"Authorization": sig, "timestamp": str(now_ms)}
    if body is not None:
        hdr["Content-Type"] = "application/json"
    hmac_out.append({"name": name, "secret": HMAC_SECRET, "method": method,
                     "now_unix_ms": now_ms, "body": body,
                     "want_header": hdr, "want_body": body})

# ---- mode "encrypted" (research §3 steps 1-6).
def derive(secret, serial, ts):
    date = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y:%m:%d:%H:%M")
    seed = (secret + serial + date).ljust(32, "0")           # padEnd: never truncates
    password = hashlib.md5(seed.encode()).hexdigest()        # lowercase hex
    ekt = base64.b64encode((password + str(ts)).encode()).decode()
    aes_key = (str(ts) + "___" + password)[:32]             # three underscores
    return date, password, ekt, aes_key

LONG = ("c0ffee5ecre7b05111e55c0de0000001", "PB2600001234")  # combined > 32 chars
SHORT = ("bc01", "S1")                                       # combined < 32: padded
enc_cases = [
    # name, (secret, serial), method, now (Unix ms), iv, body (None: no body)
    ("charge", LONG, "POST", 1774389359999, "000102030405060708090a0b0c0d0e0f",
     '{"amount":{"subtotal_iva":0,"subtotal_iva0":1500,"iva":0},"client_transaction_id":"pb-0001"}'),
    ("non-ascii-short-credential", SHORT, "POST", 1774389400000, "f0e1d2c3b4a5968778695a4b3c2d1e0f",
     '{"client_transaction_id":"pb-0002","metadata":{"mesa":"Cañón 7","nota":"café ☕ — 10 €"}}'),
    ("empty-object", LONG, "POST", 1774389420001, "11111111111111111111111111111111", "{}"),
    ("get-abort", LONG, "GET", 1774389421500, "22222222222222222222222222222222", None),
    ("post-abort-nil-body", LONG, "POST", 1774389422000, "33333333333333333333333333333333", None),
    ("minute-start", LONG, "POST", 1774389480000, "44444444444444444444444444444444",
     '{"transaction_reference":"7c1e4d0e-2b5f-4a37-9d0c-5f1b2e3a4c5d"}'),
]
enc_out = []
keys = {}
for name, (secret, serial), method, now_ms, iv, body in enc_cases:
    ts = now_ms // 1000                                      # step 1: floor to seconds
    date, password, ekt, aes_key = derive(secret, serial, ts)
    keys[name] = aes_key
    if body is not None:
        check_compact(body)
    data = json.loads(body) if body is not None else {}      # no body: sign {}
    data["key"] = ekt                                        # appended last
    signed = compact(data)
    auth = "Basic " + hashlib.sha512(base64.b64encode(signed.encode("utf-8"))).hexdigest()
    hdr = {"Authorization": auth, "timestamp": str(ts)}
    wire = None
    if not (body is None and method == "GET"):               # GET abort: nothing sent
        plain = (body if body is not None else "{}").encode("utf-8")
        ct = aes_cbc(aes_key.encode().hex(), iv, plain)
        wire = compact({"data": iv + ":" + ct.hex()})
        hdr["Content-Type"] = "application/json"
    enc_out.append({"name": name, "secret": secret, "serial": serial, "method": method,
                    "now_unix_ms": now_ms, "iv_hex": iv, "body": body,
                    "formatted_date": date, "password": password,
                    "encoded_key_timestamp": ekt, "aes_key": aes_key, "signed_json": signed,
                    "want_header": hdr, "want_body": wire})

# ---- encrypted responses, made by openssl with a request's key.
resp_cases = [
    ("approved", "charge", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     '{"transaction_status":"APPROVED","transaction_reference":"7c1e4d0e-2b5f-4a37-9d0c-5f1b2e3a4c5d","ticket_number":"000000000000000123"}'),
    ("non-ascii", "non-ascii-short-credential", "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
     '{"message":"Transacción aprobada — ¡gracias!"}'),
    ("one-full-block", "get-abort", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", '{"status":"ok!"}'),
]
resp_out = []
for name, req, iv, plain in resp_cases:
    ct = aes_cbc(keys[req].encode().hex(), iv, plain.encode("utf-8"))
    resp_out.append({"name": name, "request": req, "iv_hex": iv, "plaintext": plain,
                     "wire": compact({"data": iv + ":" + ct.hex()})})

json.dump({"comment": "generated by gen_vectors.sh; do not edit",
           "hmac": hmac_out, "encrypted": enc_out, "encrypted_responses": resp_out},
          sys.stdout, ensure_ascii=False, indent=2)
print()
PY
mv vectors.json.tmp vectors.json
echo "wrote $(pwd)/vectors.json" >&2

# The seed corpus of FuzzVerify(encrypted bool, method, authorization,
# timestamp string, body []byte): every vector request as sent, plus a few
# malformed ones. json.dumps with ensure_ascii gives valid Go string literals.
rm -rf fuzz/FuzzVerify
mkdir -p fuzz/FuzzVerify
python3 - <<'PY'
import json
v = json.load(open("vectors.json"))
def lit(s):
    return json.dumps(s, ensure_ascii=True)
def write(name, enc, method, auth, ts, body):
    with open("fuzz/FuzzVerify/" + name, "w") as f:
        f.write("go test fuzz v1\n")
        f.write("bool(%s)\n" % ("true" if enc else "false"))
        for s in (method, auth, ts):
            f.write("string(%s)\n" % lit(s))
        f.write("[]byte(%s)\n" % lit(body))
for mode, enc in (("hmac", False), ("encrypted", True)):
    for c in v[mode]:
        h = c["want_header"]
        write("%s-%s" % (mode, c["name"]), enc, c["method"], h["Authorization"], h["timestamp"], c["want_body"] or "")
enc0 = v["encrypted"][0]
h = enc0["want_header"]
write("encrypted-bad-hex", True, "POST", h["Authorization"], h["timestamp"], '{"data":"zz:0011"}')
write("encrypted-plaintext", True, "POST", h["Authorization"], h["timestamp"], enc0["body"])
write("encrypted-short-ct", True, "POST", h["Authorization"], h["timestamp"], enc0["want_body"][:-4] + '"}')
write("hmac-no-headers", False, "POST", "", "", "{}")
write("timestamp-garbage", True, "GET", "Basic 00", "17743893\u00e9", "")
PY
echo "wrote $(pwd)/fuzz/FuzzVerify" >&2

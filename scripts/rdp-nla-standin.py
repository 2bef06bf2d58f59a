#!/usr/bin/env python3
"""A stand-in for the first steps of a Network Level Authentication (CredSSP
with NTLM) login, to record what Debian's FreeRDP 3.10 logs about MD4 and to
check whether its NTLM works all the same. Loopback only.

It selects PROTOCOL_HYBRID in the X.224 Connection Confirm, does TLS, reads
the client's TSRequest with the NTLM NEGOTIATE message, answers with a
CHALLENGE ([MS-NLMP] 2.2.1.2), reads the AUTHENTICATE message and the
client's pubKeyAuth, then hangs up. It checks, with the password it was
told, that the NTLMv2 response is right (the NT hash is MD4) and that
pubKeyAuth decrypts (RC4 sealing, [MS-CSSP] 3.1.5) to the version-6
binding hash: what a Windows server checks before it accepts the login.

  scripts/rdp-nla-standin.py record OUTDIR
      starts its own Xvfb (-displayfd) and the stand-in on 127.0.0.9:3389,
      runs `xfreerdp3 /v:127.0.0.9 /u:anna /from-stdin:force /cert:tofu
      +clipboard` with `hunter2` on stdin and a fresh throwaway HOME, once
      as it is and once with OPENSSL_CONF naming a configuration that loads
      OpenSSL's legacy provider; writes each run's output to
      OUTDIR/xfreerdp3-nla-md4.txt and OUTDIR/xfreerdp3-legacy-provider.txt
      (exit codes in .code), and prints what the stand-in found. Ends Xvfb
      by its PID.
"""

import hashlib
import hmac
import importlib.util
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

ADDR, PORT = "127.0.0.9", 3389
USER, PASSWORD = "anna", "hunter2"
PROTOCOL_HYBRID = 0x2


def _standin():
    """scripts/rdp-standin.py, for its X.224 helpers."""
    spec = importlib.util.spec_from_file_location(
        "rdp_standin", os.path.join(os.path.dirname(os.path.abspath(__file__)), "rdp-standin.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_S = _standin()
read_exact, confirm = _S.read_exact, _S.confirm


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def der_items(data):
    """The (tag, body) items of a DER sequence's contents."""
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        out.append((tag, data[i:i + n]))
        i += n
    return out


def ts_request(data):
    """The fields of a TSRequest: {context tag number: inner value}."""
    (_, seq), = der_items(data)[:1]
    return {tag & 0x1F: body for tag, body in der_items(seq)}


def nego_token(field):
    """negoTokens [1]: SEQUENCE OF SEQUENCE { [0] OCTET STRING }."""
    (_, outer), = der_items(field)
    (_, inner), = der_items(outer)
    (_, ctx0), = der_items(inner)
    (_, octets), = der_items(ctx0)
    return octets


def octets_of(field):
    (_, octets), = der_items(field)
    return octets


def md4(msg):
    """MD4 (RFC 1320): Python's hashlib lacks it under OpenSSL 3 too."""
    def rol(x, n):
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF
    bits = len(msg) * 8
    msg += b"\x80" + b"\0" * ((55 - len(msg)) % 64) + struct.pack("<Q", bits)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    rounds = [
        (lambda x, y, z: (x & y) | (~x & z), 0, list(range(16)), [3, 7, 11, 19]),
        (lambda x, y, z: (x & y) | (x & z) | (y & z), 0x5A827999,
         [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15], [3, 5, 9, 13]),
        (lambda x, y, z: x ^ y ^ z, 0x6ED9EBA1,
         [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15], [3, 9, 11, 15]),
    ]
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        a, b, c, d = h
        for f, k, order, shifts in rounds:
            for i, j in enumerate(order):
                a = rol((a + f(b, c, d) + x[j] + k) & 0xFFFFFFFF, shifts[i % 4])
                a, b, c, d = d, a, b, c
        h = [(v + w) & 0xFFFFFFFF for v, w in zip(h, [a, b, c, d])]
    return struct.pack("<4I", *h)


def rc4(key, data):
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for ch in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(ch ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def challenge_message(client_flags, server_challenge):
    name = "WIN".encode("utf-16-le")

    def av(kind, value):
        return struct.pack("<HH", kind, len(value)) + value
    stamp = struct.pack("<Q", int((time.time() + 11644473600) * 10**7))
    info = av(2, name) + av(1, name) + av(4, name) + av(3, name) + av(7, stamp) + av(0, b"")
    # Target info and a server target type; never OEM strings.
    flags = (client_flags | 0x00800000 | 0x00020000) & ~0x2
    head = 56
    return (b"NTLMSSP\0" + struct.pack("<I", 2)
            + struct.pack("<HHI", len(name), len(name), head)
            + struct.pack("<I", flags) + server_challenge + b"\0" * 8
            + struct.pack("<HHI", len(info), len(info), head + len(name))
            + bytes([10, 0, 0x61, 0x58, 0, 0, 0, 15]) + name + info)


def check_login(auth, server_challenge, client_nonce, public_key):
    """Whether the AUTHENTICATE message and pubKeyAuth are what a server
    that knows PASSWORD accepts."""
    msg = nego_token(auth[1])
    assert msg[:8] == b"NTLMSSP\0" and struct.unpack("<I", msg[8:12])[0] == 3

    def field(off):
        n, _, o = struct.unpack("<HHI", msg[off:off + 8])
        return msg[o:o + n]
    nt, domain, user = field(20), field(28), field(36)
    flags = struct.unpack("<I", msg[60:64])[0]
    nt_hash = md4(PASSWORD.encode("utf-16-le"))
    key = hmac.new(nt_hash, (user.decode("utf-16-le").upper()
                             + domain.decode("utf-16-le")).encode("utf-16-le"), "md5").digest()
    proof = hmac.new(key, server_challenge + nt[16:], "md5").digest()
    base = hmac.new(key, proof, "md5").digest()
    exported = rc4(base, field(52)) if flags & 0x40000000 else base
    seal = hashlib.md5(exported + b"session key to client-to-server sealing key magic constant\0").digest()
    sealed = octets_of(auth[3])[16:]
    want = hashlib.sha256(b"CredSSP Client-To-Server Binding Hash\0" + client_nonce + public_key).digest()
    return proof == nt[:16], rc4(seal, sealed) == want


def serve_once(ctx, public_key, report):
    """One login, then the port closes: FreeRDP retries a failed NLA login
    without it, and would wait for an answer from a port still open."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ADDR, PORT))
    sock.listen(1)
    report.append(None)
    with sock:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(10)
            head = read_exact(conn, 4)
            read_exact(conn, int.from_bytes(head[2:4], "big") - 4)
            conn.sendall(confirm(PROTOCOL_HYBRID))
            with ctx.wrap_socket(conn, server_side=True) as tls:
                first = ts_request(tls.recv(65536))
                negotiate = nego_token(first[1])
                client_flags = struct.unpack("<I", negotiate[12:16])[0]
                client_nonce = octets_of(first[5])
                server_challenge = os.urandom(8)
                token = challenge_message(client_flags, server_challenge)
                tls.sendall(tlv(0x30, tlv(0xA0, tlv(0x02, b"\x06"))
                                + tlv(0xA1, tlv(0x30, tlv(0x30, tlv(0xA0, tlv(0x04, token)))))))
                auth = ts_request(tls.recv(65536))
                ntlm_ok, seal_ok = check_login(auth, server_challenge, client_nonce, public_key)
                report[0] = (f"NTLMv2 response right: {ntlm_ok}; pubKeyAuth sealed right: {seal_ok}")


# The configuration bkt writes for the RDP client (one copy, bkt's own).
LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "tools",
                      "openssl-legacy.cnf")


def record(outdir):
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rdp-nla-standin.") as tmp:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "c.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                        "-subj", "/CN=windows-A", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        # The RSAPublicKey CredSSP binds to: the certificate's subjectPublicKey.
        pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"],
                             check=True, capture_output=True).stdout
        public_key = subprocess.run(["openssl", "rsa", "-pubin", "-RSAPublicKey_out", "-outform", "DER"],
                                    input=pub, check=True, capture_output=True).stdout
        legacy = LEGACY
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            display = ":" + xvfb.stdout.readline().decode().strip()
            for name, extra in [("xfreerdp3-nla-md4", {}), ("xfreerdp3-legacy-provider", {"OPENSSL_CONF": legacy})]:
                report = []
                t = threading.Thread(target=lambda: serve_once(ctx, public_key, report), daemon=True)
                t.start()
                while not report:
                    time.sleep(0.01)
                home = os.path.join(tmp, name)
                os.makedirs(home)
                argv = ["xfreerdp3", f"/v:{ADDR}", f"/u:{USER}", "/from-stdin:force", "/cert:tofu", "+clipboard"]
                env = {"PATH": "/usr/bin:/bin", "HOME": home, "DISPLAY": display, **extra}
                print("+", " ".join(f"{k}={v}" for k, v in extra.items()), " ".join(argv))
                r = subprocess.run(argv, input=f"{PASSWORD}\n".encode(), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
                t.join(15)
                with open(os.path.join(outdir, f"{name}.txt"), "wb") as f:
                    f.write(r.stdout)
                with open(os.path.join(outdir, f"{name}.code"), "w") as f:
                    f.write(f"{r.returncode}\n")
                print(f"  exit {r.returncode}; {report[0] or 'the stand-in saw no login'}")
        finally:
            xvfb.terminate()
            xvfb.wait()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        sys.exit(__doc__)
    record(sys.argv[2])

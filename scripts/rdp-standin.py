#!/usr/bin/env python3
"""A stand-in RDP server, just enough of one to record how FreeRDP reacts to
a server certificate that changed since the last connection (a VM recreated
at a reused address), as `bkt vm connect` runs it.

It answers the client's X.224 Connection Request ([MS-RDPBCGR] 2.2.1.1) with
a Connection Confirm whose RDP_NEG_RSP (2.2.1.2.1) selects TLS
(PROTOCOL_SSL), does the TLS handshake with the certificate it was given,
and then hangs up: the client has seen the certificate, which is all FreeRDP
checks before it fails. It binds a loopback address only.

  scripts/rdp-standin.py serve --cert CERT.pem --key KEY.pem [--addr A] [--port P]
      serve until Ctrl-C.

  scripts/rdp-standin.py record OUTDIR
      re-record the fixtures: makes two self-signed certificates A and B
      (openssl), starts its own Xvfb (-displayfd), and for `xfreerdp`
      (FreeRDP 2, freerdp2-x11) and `xfreerdp3` (FreeRDP 3, freerdp3-x11)
      each, with a fresh throwaway HOME: connects once while serving A (first
      contact: /cert:tofu stores A), then serves B at the same address and
      port and connects again. Both runs use the exact argv `bkt vm connect`
      builds, with the password on stdin. Writes each run's stdout+stderr
      (interleaved, as bkt's client log gets them) to
      OUTDIR/xfreerdpN-cert-{first,changed}.txt and its exit code to the
      same name with .code, prints each command, lists the files FreeRDP
      left under HOME and copies FreeRDP 2's known_hosts2 (after the first
      contact) to OUTDIR/xfreerdp2-known_hosts2.txt. Ends Xvfb by its PID.
"""

import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

PROTOCOL_SSL = 0x1


def confirm(selected):
    """TPKT + X.224 Connection Confirm + RDP_NEG_RSP selecting `selected`."""
    neg = bytes([0x02, 0x00, 0x08, 0x00]) + selected.to_bytes(4, "little")
    x224 = bytes([6 + len(neg), 0xD0, 0x00, 0x00, 0x12, 0x34, 0x00]) + neg
    return bytes([0x03, 0x00]) + (4 + len(x224)).to_bytes(2, "big") + x224


def failure():
    """An RDP_NEG_FAILURE: SSL_REQUIRED_BY_SERVER."""
    neg = bytes([0x03, 0x00, 0x08, 0x00]) + (1).to_bytes(4, "little")
    x224 = bytes([6 + len(neg), 0xD0, 0x00, 0x00, 0x12, 0x34, 0x00]) + neg
    return bytes([0x03, 0x00]) + (4 + len(x224)).to_bytes(2, "big") + x224


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("client hung up")
        data += chunk
    return data


def requested_protocols(tpdu):
    """requestedProtocols of the RDP_NEG_REQ at the end of a Connection
    Request, 0 (standard RDP security) when there is none."""
    if len(tpdu) >= 8 and tpdu[-8] == 0x01:
        return int.from_bytes(tpdu[-4:], "little")
    return 0


class Server:
    def __init__(self, addr, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(4)
        self.ctx = None

    def use(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx

    def handle(self, conn):
        with conn:
            conn.settimeout(10)
            header = read_exact(conn, 4)
            length = int.from_bytes(header[2:4], "big")
            tpdu = read_exact(conn, length - 4)
            req = requested_protocols(tpdu)
            log(f"connection request, requestedProtocols=0x{req:x}")
            if not req & PROTOCOL_SSL:
                conn.sendall(failure())
                return
            conn.sendall(confirm(PROTOCOL_SSL))
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                log(f"TLS up ({tls.version()})")
                try:
                    tls.recv(4096)
                except (OSError, ssl.SSLError):
                    pass

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.handle(conn)
            except (OSError, EOFError, ssl.SSLError) as e:
                log(f"connection ended: {e}")


def log(msg):
    print(f"rdp-standin: {msg}", file=sys.stderr, flush=True)


def make_cert(dirname, name):
    cert = os.path.join(dirname, f"{name}.pem")
    key = os.path.join(dirname, f"{name}.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "3650", "-subj", f"/CN=windows-{name}",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


def start_xvfb():
    x = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24",
         "-nolisten", "tcp"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = x.stdout.readline().decode().strip()
    if not line.isdigit():
        x.terminate()
        sys.exit(f"Xvfb said {line!r}")
    return x, f":{line}"


# The argv bkt builds (src/tools/rdp.rs) for host ADDR, user anna, VM windows,
# by the fixture name of each client.
ARGV = {
    "xfreerdp2": ["xfreerdp", "/v:{addr}", "/u:anna", "/from-stdin:force",
                  "/cert:tofu", "/dynamic-resolution", "+clipboard", "/sound",
                  "/t:windows"],
    "xfreerdp3": ["xfreerdp3", "/v:{addr}", "/u:anna", "/from-stdin:force",
                  "/cert:tofu", "+dynamic-resolution", "+clipboard", "/sound",
                  "/t:windows"],
}


def record(outdir, addr):
    work = tempfile.mkdtemp(prefix="rdp-standin.")
    xvfb = None
    try:
        a = make_cert(work, "A")
        b = make_cert(work, "B")
        xvfb, display = start_xvfb()
        server = Server(addr, 3389)
        threading.Thread(target=server.serve, daemon=True).start()
        for client, args in ARGV.items():
            home = os.path.join(work, f"home-{client}")
            os.mkdir(home)
            env = {"HOME": home, "DISPLAY": display, "PATH": "/usr/bin:/bin"}
            argv = [x.format(addr=addr) for x in args]
            for run, cert in (("first", a), ("changed", b)):
                server.use(*cert)
                p = subprocess.run(argv, input=b"hunter2\n", env=env,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=60)
                path = os.path.join(outdir, f"{client}-cert-{run}")
                with open(f"{path}.txt", "wb") as f:
                    f.write(p.stdout)
                with open(f"{path}.code", "w") as f:
                    f.write(f"{p.returncode}\n")
                print(f"{path}.txt: exit {p.returncode}: {' '.join(argv)}")
                known = os.path.join(home, ".config/freerdp/known_hosts2")
                if run == "first" and os.path.exists(known):
                    shutil.copy(known, os.path.join(
                        outdir, f"{client}-known_hosts2.txt"))
            for root, _, files in os.walk(home):
                for f in files:
                    print(f"  left {os.path.join(root, f)[len(home):]}")
    finally:
        if xvfb:
            xvfb.terminate()
            xvfb.wait()
        shutil.rmtree(work)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--addr", default="127.0.0.2")
    s.add_argument("--port", type=int, default=3389)
    r = sub.add_parser("record")
    r.add_argument("outdir")
    r.add_argument("--addr", default="127.0.0.2")
    args = ap.parse_args()
    if not args.addr.startswith("127."):
        sys.exit("rdp-standin: binds loopback (127.x.y.z) only")
    if args.mode == "serve":
        server = Server(args.addr, args.port)
        server.use(args.cert, args.key)
        log(f"listening on {args.addr}:{args.port}")
        try:
            server.serve()
        except KeyboardInterrupt:
            pass
    else:
        record(args.outdir, args.addr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A local stand-in for Microsoft's Windows 11 download service, on 127.0.0.1.

It answers the five steps public clients use (docs: windows-iso.md): the
download page, vlscppe's tags, ov-df's mdt.js challenge and its reply, the
SKU list and the download link, from the answers in fixtures/microsoft/
(specified from public clients, not recorded), and serves the ISO bytes with
Range, If-Range, an ETag and Last-Modified. Nothing here was checked against
Microsoft.

TLS: with --tls-dir DIR it makes a test CA and a certificate for 127.0.0.1
with openssl in DIR (DIR/ca.pem is what bkt gets as BKT_VM_CA_FILE).
It binds port 0 and writes the port to --port-file once it listens.
Base URLs: https://127.0.0.1:PORT/www, /vlscppe, /ovdf (for
BKT_VM_MS_WWW_URL, BKT_VM_MS_VLSCPPE_URL, BKT_VM_MS_OVDF_URL).

Scenarios (--scenario, comma-separated):
  ok             everything as specified
  refuse         the link step answers Sentinel's refusal (715-123130)
  changed        mdt.js has no challenge in it (the page or API changed)
  no-edition     the page lists no edition (clients fall back to 3321)
  wrong-hash     the page publishes another SHA-256 for English
  expire:N       a link's ISO transfer is cut after N bytes and the link
                 answers 403 from then on; a fresh link works
  short:N        the first ISO response is cut after N bytes
  stall:N        the first ISO response stops after N bytes and hangs
  stall-page     the page does not answer (for 120 s)
  new-release    a fresh link (any token but tok1) serves another release:
                 byte 0 flipped, another ETag and Last-Modified; the page
                 publishes that release's SHA-256
  no-hash        the page publishes no SHA-256 for English
  portal         a resumed ISO request (with Range) is answered by a
                 captive portal's web page (200, text/html)
Every request is appended to --log as `GET PATH` (+ ` range=... if-range=... referer=...`).
"""

import argparse
import hashlib
import http.server
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

INSTANCE_ID = "560dc9f3-1aa5-4a2f-b63c-9e18f8d0e175"
REFERER = "https://www.microsoft.com/software-download/windows11"
LAST_MODIFIED = "Tue, 01 Dec 2026 10:00:00 GMT"
NEW_LAST_MODIFIED = "Mon, 07 Dec 2026 10:00:00 GMT"


def flipped(chunk, at):
    """The new release's bytes: the old ones with byte 0 flipped."""
    if at == 0 and chunk:
        return bytes([chunk[0] ^ 0xFF]) + chunk[1:]
    return chunk


def make_tls(d):
    """A test CA and a server certificate for 127.0.0.1, signed by it."""
    def run(*a):
        subprocess.run(a, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
        "-days", "2", "-subj", "/CN=bkt test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", *ec, "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr",
        "-subj", "/CN=127.0.0.1")
    with open(f"{d}/server.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem",
        "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/server.pem",
        "-days", "2", "-extfile", f"{d}/server.ext")


class State:
    def __init__(self, args):
        self.args = args
        self.fixtures = args.fixtures
        self.scenario = {}
        for s in args.scenario.split(","):
            k, _, v = s.partition(":")
            self.scenario[k] = int(v) if v else True
        self.iso = args.iso
        self.size = os.path.getsize(args.iso)
        h, new = hashlib.sha256(), hashlib.sha256()
        with open(args.iso, "rb") as f:
            at = 0
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                new.update(flipped(chunk, at))
                at += len(chunk)
        self.sha256 = h.hexdigest()
        self.new_sha256 = new.hexdigest()
        self.etag = '"iso-%s"' % self.sha256[:12]
        self.lock = threading.Lock()
        self.challenged = set()
        self.tokens = 0
        self.expired = set()
        self.first_iso = True
        self.port = 0

    def fixture(self, name):
        with open(os.path.join(self.fixtures, name), encoding="utf-8") as f:
            return f.read()

    def log(self, line):
        with self.lock, open(self.args.log, "a") as f:
            f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="text/html; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        st = self.state
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        ref = self.headers.get("Referer")
        line = "GET " + self.path
        for name in ("Range", "If-Range", "Referer"):
            if self.headers.get(name):
                line += f" {name.lower()}={self.headers.get(name)}"
        st.log(line)
        path = url.path
        sc = st.scenario
        if path == "/www/en-us/software-download/windows11":
            if "stall-page" in sc:
                time.sleep(120)
            page = st.fixture("page.html")
            english = re.search(r"English 64-bit</td><td>([0-9A-F]{64})", page).group(1)
            published = "0" * 64 if "wrong-hash" in sc else st.sha256.upper()
            if "new-release" in sc:
                published = st.new_sha256.upper()
            page = page.replace(english, published)
            if "no-hash" in sc:
                page = re.sub(r"<tr><td>English 64-bit</td>.*?</tr>", "", page)
            if "no-edition" in sc:
                page = re.sub(r'<option value="\d+">Windows 11[^<]*</option>', "", page)
            return self.send(200, page)
        if path == "/vlscppe/tags" and q.get("org_id") == "y6jn8c31" and q.get("session_id"):
            return self.send(200, "", "text/plain")
        if path == "/ovdf/mdt.js" and q.get("instanceId") == INSTANCE_ID:
            body = "var x = 1;" if "changed" in sc else st.fixture("mdt.js")
            return self.send(200, body, "application/javascript")
        if path == "/ovdf/":
            ok = (q.get("CustomerId") == INSTANCE_ID and q.get("w") == "3F9A1C0B7E"
                  and q.get("rticks") == "638901234567890123" and q.get("mdt", "").isdigit())
            if ok:
                with st.lock:
                    st.challenged.add(q.get("session_id"))
            return self.send(200 if ok else 400, "", "text/plain")
        api = "/www/software-download-connector/api/"
        if path.startswith(api):
            return self.api(path[len(api):], q, ref)
        if path.endswith(".iso"):
            return self.iso(q)
        return self.send(404, "<html>not found</html>")

    def api(self, name, q, ref):
        st = self.state
        sentinel = st.fixture("sentinel.json")
        if q.get("profile") != "606624d44113" or q.get("sessionID") not in st.challenged:
            return self.send(200, sentinel, "application/json")
        if name == "getskuinformationbyproductedition" and q.get("productEditionId") == "3321":
            return self.send(200, st.fixture("skus.json"), "application/json")
        if name == "GetProductDownloadLinksBySku" and q.get("SKU"):
            if "refuse" in st.scenario or ref != REFERER:
                return self.send(200, sentinel, "application/json")
            with st.lock:
                st.tokens += 1
                token = st.tokens
            links = st.fixture("links.json").replace(
                "https://software.download.prss.microsoft.com",
                f"https://127.0.0.1:{st.port}").replace("t=0a1b2c3d", f"t=tok{token}")
            return self.send(200, links, "application/json")
        return self.send(400, '{"Errors":[{"Key":"BadRequest","Type":1}]}', "application/json")

    def iso(self, q):
        st = self.state
        token = q.get("t")
        with st.lock:
            first = st.first_iso
            st.first_iso = False
            expired = token in st.expired
        if expired:
            return self.send(403, "<html>This link has expired</html>")
        if "portal" in st.scenario and self.headers.get("Range"):
            return self.send(200, "<html>Sign in to the guest network</html>")
        new = "new-release" in st.scenario and token != "tok1"
        etag, modified = ('"iso-new"', NEW_LAST_MODIFIED) if new else (st.etag, LAST_MODIFIED)
        start = 0
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (if_range is None or if_range in (etag, modified)):
            start = int(rng.split("=")[1].split("-")[0])
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(st.size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{st.size - 1}/{st.size}")
        self.end_headers()
        limit = None
        if "expire" in st.scenario and token == "tok1":
            limit = max(st.scenario["expire"] - start, 0)
            with st.lock:
                st.expired.add(token)
        elif first and "short" in st.scenario:
            limit = st.scenario["short"]
        elif first and "stall" in st.scenario:
            limit = st.scenario["stall"]
        sent = 0
        with open(st.iso, "rb") as f:
            f.seek(start)
            while limit is None or sent < limit:
                n = 1 << 20 if limit is None else min(1 << 20, limit - sent)
                at = f.tell()
                chunk = f.read(n)
                if not chunk:
                    break
                if new:
                    chunk = flipped(chunk, at)
                self.wfile.write(chunk)
                sent += len(chunk)
        self.wfile.flush()
        if limit is not None and first and "stall" in st.scenario:
            time.sleep(120)
        self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up (Ctrl-C, a refused certificate) is a test
        # case, not a fault.
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixtures", required=True)
    p.add_argument("--iso", required=True)
    p.add_argument("--tls-dir", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--scenario", default="ok")
    args = p.parse_args()
    make_tls(args.tls_dir)
    st = State(args)
    Handler.state = st
    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{args.tls_dir}/server.pem", f"{args.tls_dir}/server.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    st.port = srv.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(st.port))
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

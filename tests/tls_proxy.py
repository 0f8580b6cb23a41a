"""A TLS-terminating HTTPS proxy on loopback: TensorFlow's own gs:// filesystem against an emulator.

Why: TensorFlow's GCS filesystem (openxla/xla `xla/tsl/platform/cloud/gcs_file_system.cc`) has
its endpoints as constants (`https://www.googleapis.com/storage/v1/`, `.../upload/storage/v1/`,
`https://storage.googleapis.com/BUCKET/OBJECT` for reads) and reads no STORAGE_EMULATOR_HOST, so
TFDS data in a gs:// bucket cannot reach gcp-storage-emulator directly. Its HTTP goes through
libcurl, which honours HTTPS_PROXY, and `curl_http_request.cc` passes CURL_CA_BUNDLE to
CURLOPT_CAINFO. With the environment of `TlsProxy.env()`, libcurl sends `CONNECT host:443` here;
the proxy completes the TLS handshake with a certificate for the Google hosts signed by a CA made
for this proxy alone (openssl CLI, in a temporary directory), reads the decrypted HTTP/1.1
requests and forwards each one to the plain-HTTP upstream (tests/gcs_emulator.py). It records
every forwarded request, so a test can show what was read from the bucket.

    with TlsProxy(emulator.endpoint) as proxy:
        env = dict(os.environ, **proxy.env())

Differences between TensorFlow's requests and gcp-storage-emulator, bridged here:
1. Chunked bodies. TF's uploads set CURLOPT_UPLOAD and add a `Content-Length` header of their own,
   so libcurl, not told the size, also sends `Transfer-Encoding: chunked`; the emulator reads
   Content-Length bytes of the chunked stream (chunk sizes included). Bodies go de-chunked.
2. Resumable-upload `Location`. The emulator builds it from the request's Host as `http://...`
   (here the emulator's own address, since the proxy sends Host: upstream). It is rewritten to
   `https://` on the host the client asked for, as GCS answers, so the upload's PUT comes back
   through the proxy; with the Google Host kept, libcurl would send plain http to the internet.
3. Zero-byte media uploads. TF makes a directory marker (`gs://b/dir/`, CreateDir) as
   `uploadType=media` with an empty body; the emulator reads an empty body as None and fails on
   len(None) without answering, and TF retries for minutes. It goes as a multipart upload.
4. `GET /storage/v1/b/BUCKET/storageLayout` (buckets.getStorageLayout). TF asks it before renaming
   a directory (TFDS's `incomplete.*` to the version directory) and fails on any error; the
   emulator has no such route (404). The proxy answers a flat bucket's layout when the bucket
   exists, and TF renames object by object (rewriteTo, then DELETE), which the emulator has.

Limits: for tests only. HTTP/1.1 only (TF's curl asks for 1.1); CONNECT only to HOSTS (others
get 403); bodies are held in memory; one upstream connection per request; nothing is printed
unless TLS_PROXY_DEBUG is set.
"""

import http.client
import http.server
import json
import os
import re
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse

HOSTS = ("www.googleapis.com", "storage.googleapis.com")
# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy sets itself.
_DROPPED = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length", "host",
}  # fmt: skip
_STORAGE_LAYOUT = re.compile(r"^/storage/v1/b/([^/?]+)/storageLayout(?:\?.*)?$")
DEBUG = bool(os.environ.get("TLS_PROXY_DEBUG"))


def _log(message):
    if DEBUG:
        print(f"tls_proxy: {message}", file=sys.stderr, flush=True)


def make_certificates(directory, hosts=HOSTS):
    """(CA certificate, server certificate, server key) paths in `directory`, made by openssl."""

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=tfplaybook throwaway test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            f"subjectAltName={','.join('DNS:' + h for h in hosts)}\n"
        )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
    )  # fmt: skip
    return tuple(os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key"))


class TlsProxy:
    """The proxy on 127.0.0.1:<free port> in front of `upstream` (http://host:port).

    The port is bound and listening when `start()` returns, so clients need no wait."""

    def __init__(self, upstream, hosts=HOSTS):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.hosts = tuple(hosts)
        self.requests = []  # (method, host, path, status) of each forwarded request, in order.
        self.lock = threading.Lock()
        self.ca_path = None
        self._tmp = self._server = self._thread = None

    @property
    def port(self):
        return self._server.server_address[1]

    def env(self):
        """A client process's variables: the proxy for https, the CA, a token, no metadata server.

        google_auth_provider.cc takes GOOGLE_AUTH_TOKEN_FOR_TESTING before any credentials file or
        the GCE metadata server (NO_GCE_CHECK=true would skip the latter too). libcurl reads
        HTTPS_PROXY (and https_proxy) for https URLs; NO_PROXY keeps loopback http direct.
        """
        proxy = f"http://127.0.0.1:{self.port}"
        return {
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "CURL_CA_BUNDLE": self.ca_path,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test-token",
            "NO_GCE_CHECK": "true",
        }

    def snapshot(self):
        """A copy of the requests forwarded so far."""
        with self.lock:
            return list(self.requests)

    def start(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tls-proxy-")
        self.ca_path, cert, key = make_certificates(self._tmp.name, self.hosts)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["http/1.1"])
        self._server = _Server(("127.0.0.1", 0), _Connect)
        self._server.proxy, self._server.context = self, context
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=30)
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # A client's idle keep-alive connection does not hold up stop().
    allow_reuse_address = True


class _Connect(socketserver.StreamRequestHandler):
    """One client connection: `CONNECT host:443`, then HTTP/1.1 over TLS until it closes."""

    rbufsize = 0  # Unbuffered: no byte of the TLS handshake may stay in a reader before the wrap.

    def handle(self):
        line = self.rfile.readline(65537).decode("latin-1").split()
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # The CONNECT request's headers carry nothing the proxy needs.
        host = line[1].rsplit(":", 1)[0] if len(line) == 3 and line[0] == "CONNECT" else None
        if host not in self.server.proxy.hosts:
            _log(f"refused {' '.join(line)}")
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            tls = self.server.context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as e:
            _log(f"TLS handshake for {host} failed: {e}")
            return
        try:
            _Forward(tls, self.client_address, self.server, host)
        except (ssl.SSLError, ConnectionError):
            pass  # The client went away.
        finally:
            tls.close()


class _Forward(http.server.BaseHTTPRequestHandler):
    """The decrypted requests for `host`, each forwarded to the upstream (module docstring)."""

    protocol_version = "HTTP/1.1"

    def __init__(self, request, client_address, server, host):
        self.host = host
        super().__init__(request, client_address, server)

    def log_message(self, format, *args):
        _log(f"{self.host} " + format % args)

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():  # Difference 1.
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # Trailers.
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self):
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROPPED}
        path, layout = self.path, _STORAGE_LAYOUT.match(self.path)
        if layout:  # Difference 4: ask for the bucket itself.
            path = f"/storage/v1/b/{layout.group(1)}"
        elif self.command == "POST" and not body and "uploadType=media" in path:
            path, body = _as_multipart(path, headers)  # Difference 3.
        upstream = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=300)
        try:
            upstream.request(self.command, path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if layout and response.status == 200:
            data = json.dumps(_flat_layout(layout.group(1))).encode()
        with self.server.proxy.lock:
            self.server.proxy.requests.append((self.command, self.host, self.path, response.status))
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() == "location":
                value = self._https(value)  # Difference 2.
            if name.lower() not in _DROPPED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _https(self, location):
        parts = urllib.parse.urlsplit(location)
        if parts.scheme != "http":
            return location
        return urllib.parse.urlunsplit(("https", self.host, *parts[2:]))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


def _flat_layout(bucket):
    """buckets.getStorageLayout's answer for a bucket without hierarchical namespace."""
    return {
        "kind": "storage#storageLayout",
        "bucket": bucket,
        "location": "US",
        "locationType": "multi-region",
        "hierarchicalNamespace": {"enabled": False},
    }


def _as_multipart(path, headers):
    """The same zero-byte object as a multipart upload (JSON metadata part, empty media part)."""
    boundary = "tls-proxy-empty-upload"
    headers["Content-Type"] = f"multipart/related; boundary={boundary}"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n"
    ).encode()
    return path.replace("uploadType=media", "uploadType=multipart", 1), body

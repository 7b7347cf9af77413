#!/usr/bin/env python3
"""A bearer-token server for Debian's docker-registry (distribution 2.8's `auth: token`), for
the e2e tests: the registry sends clients here (WWW-Authenticate: Bearer realm=...), this
answers GET /token?service=S&scope=repository:NAME:ACTIONS with a JWT (RS256, the signing
certificate in the x5c header, so the registry checks it against its rootcertbundle).

Users come from a file of "user:password" lines. A user with the right password gets every
action asked for; anyone else gets a token granting nothing (as Docker Hub does for anonymous
clients), so the registry answers 401. Every request is logged to stdout as one line:
"<user or -> <scope>".

Usage: token_server.py PORT KEY.pem CERT.pem ISSUER USERS_FILE
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    port, key, cert, issuer, users_file = sys.argv[1:6]
    users = {}
    for line in open(users_file):
        if ":" in line:
            u, p = line.rstrip("\n").split(":", 1)
            users[u] = p
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    x5c = base64.b64encode(der).decode()

    def sign(claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                             check=True, capture_output=True).stdout
        return signing_input + "." + b64url(sig)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # one line per request, printed below
            pass

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            if url.path != "/token":
                self.send_error(404)
                return
            q = urllib.parse.parse_qs(url.query)
            user = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    u, p = base64.b64decode(auth[6:]).decode().split(":", 1)
                except Exception:
                    u, p = "", None
                if users.get(u) == p:
                    user = u
                else:
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"details":"incorrect username or password"}')
                    print(f"denied {q.get('scope', [''])[0]}", flush=True)
                    return
            access = []
            for scope in q.get("scope", []):
                for one in scope.split(" "):
                    parts = one.split(":")
                    if len(parts) == 3 and user is not None:
                        access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
            now = int(time.time())
            claims = {"iss": issuer, "sub": user or "", "aud": q.get("service", [""])[0], "exp": now + 300,
                      "nbf": now - 10, "iat": now, "jti": b64url(os.urandom(12)), "access": access}
            token = sign(claims)
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            print(f"{user or '-'} {' '.join(q.get('scope', []))}", flush=True)

    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()

"""A stand-in for the Kubernetes API server's TokenReview endpoint.

Served by the test in a thread (`http.server`), it answers
`POST /apis/authentication.k8s.io/v1/tokenreviews` the way the API server
does: the caller's bearer token must be the reviewer token (RBAC), tokens are
known with the service account and audiences they were issued for, a review
naming no audience is checked against the API server's own, and an
authenticated reply names `system:serviceaccount:<ns>:<sa>`. The same
behaviour as core/tests/common/tokenreview.rs.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
# The audience a real API server assumes when a review names none.
API_AUDIENCE = "https://kubernetes.default.svc"


@dataclass
class Issued:
    namespace: str
    name: str
    uid: str
    audiences: list[str]


class TokenReviewServer:
    """A running review endpoint on a loopback port."""

    def __init__(self) -> None:
        self.reviewer_jwt = f"reviewer-{secrets.token_hex(16)}"
        self._tokens: dict[str, Issued] = {}
        self._reviews: list[dict] = []
        self._bearers: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tokenreview", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    # -------------------------------------------------------------- tokens --

    def mint(self, namespace: str, name: str, audiences: list[str]) -> str:
        """A service-account token for `namespace/name`, valid for `audiences`."""
        token = f"sa-token-{secrets.token_hex(16)}"
        with self._lock:
            self._tokens[token] = Issued(namespace, name, f"uid-{namespace}-{name}", list(audiences))
        return token

    def invalidate(self, token: str) -> None:
        """Forget a token, as the API server does when its pod is deleted."""
        with self._lock:
            self._tokens.pop(token, None)

    def reviews(self) -> list[dict]:
        """The review bodies received from callers that presented the reviewer token."""
        with self._lock:
            return list(self._reviews)

    def bearers(self) -> list[str]:
        """Every bearer token presented, accepted or not."""
        with self._lock:
            return list(self._bearers)

    # ------------------------------------------------------------- serving --

    def _answer(self, bearer: str, body: dict) -> tuple[int, dict]:
        with self._lock:
            self._bearers.append(bearer)
            if bearer != self.reviewer_jwt:
                return 401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
            self._reviews.append(body)
            spec = body.get("spec") or {}
            asked = spec.get("audiences") or [API_AUDIENCE]
            issued: Optional[Issued] = self._tokens.get(spec.get("token", ""))
        if issued is None:
            status = {"authenticated": False, "error": "invalid bearer token"}
        else:
            valid = [a for a in issued.audiences if a in asked]
            if not valid:
                status = {"authenticated": False,
                          "error": "token audiences are invalid for the target audiences"}
            else:
                status = {
                    "authenticated": True,
                    "user": {
                        "username": f"system:serviceaccount:{issued.namespace}:{issued.name}",
                        "uid": issued.uid,
                        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{issued.namespace}"],
                    },
                    "audiences": valid,
                }
        return 201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                     "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != REVIEW_PATH:
                    self._reply(404, {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._reply(400, {"kind": "Status", "status": "Failure", "code": 400, "reason": "BadRequest"})
                    return
                auth = self.headers.get("Authorization") or ""
                bearer = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
                code, reply = server._answer(bearer, body)
                self._reply(code, reply)

            def _reply(self, code: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format, *args):  # noqa: A002
                # Quiet: request lines would only clutter pytest's output.
                pass

        return Handler


def enable_kubernetes_auth(server, root, review: TokenReviewServer, mount: str = "kubernetes") -> None:
    """Enables Cairn's Kubernetes auth method with hvac and points it at `review`."""
    server.remember(review.reviewer_jwt)
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.auth.kubernetes.configure(kubernetes_host=review.url, token_reviewer_jwt=review.reviewer_jwt,
                                   mount_point=mount)


def login_token(server, review: TokenReviewServer, role: str, namespace: str, name: str,
                audiences=("cairn",), mount: str = "kubernetes") -> str:
    """Mints a service-account token, logs in with it through hvac, returns the Cairn token."""
    jwt = review.mint(namespace, name, list(audiences))
    server.remember(jwt)
    client = server.client(token="")
    auth = client.auth.kubernetes.login(role=role, jwt=jwt, mount_point=mount)["auth"]
    server.remember(auth["client_token"])
    return auth["client_token"]

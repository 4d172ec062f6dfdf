"""A test identity provider: real RSA and EC keys in a JWKS file, real signed JWTs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.hospital.test/realms/pacs"
AUDIENCE = "dicomvault"
READ, WRITE, ADMIN = "dicomvault.read", "dicomvault.write", "dicomvault.admin"


class Issuer:
    """An identity provider's keys: an RSA (RS256) and an EC P-256 (ES256) key in a JWKS."""

    def __init__(self, folder: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        keys = []
        for kid, key, alg, algo in (("rs-1", self.rsa, "RS256", jwt.algorithms.RSAAlgorithm),
                                    ("ec-1", self.ec, "ES256", jwt.algorithms.ECAlgorithm)):
            jwk = json.loads(algo.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        self.jwks_file = folder / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": keys}))

    def token(self, *scopes: str, issuer: str = ISSUER, audience: str = AUDIENCE,
              expires_in: float = 600, alg: str = "RS256", key: object | None = None,
              subject: str = "viewer-1") -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "sub": subject, "iat": now,
                  "exp": now + int(expires_in), "scope": " ".join(scopes)}
        signing = key or (self.rsa if alg == "RS256" else self.ec)
        return jwt.encode(claims, signing, algorithm=alg,
                          headers={"kid": "rs-1" if alg == "RS256" else "ec-1"})

    def bearer(self, *scopes: str, **kw) -> dict[str, str]:
        """An ``Authorization: Bearer …`` header with a fresh token of these scopes."""
        return {"Authorization": f"Bearer {self.token(*scopes, **kw)}"}


def auth_env(issuer: Issuer) -> dict[str, str]:
    """DICOMVAULT_AUTH__* of a service process that verifies this issuer's tokens."""
    return {"DICOMVAULT_AUTH__ENABLED": "true",
            "DICOMVAULT_AUTH__JWKS_FILE": str(issuer.jwks_file),
            "DICOMVAULT_AUTH__ISSUER": ISSUER, "DICOMVAULT_AUTH__AUDIENCE": AUDIENCE}


def assert_refused(response, status: int) -> None:
    """A refusal of the token guard: 401 (no or bad token) or 403 (scope missing), with the
    RFC 6750 challenge."""
    assert response.status_code == status, (response.status_code, response.text)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="dicomvault"'), challenge
    if status == 403:
        assert 'error="insufficient_scope"' in challenge, challenge

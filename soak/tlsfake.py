"""A listener that speaks just enough Kafka over TLS to record what a client authenticates with.

The embedded broker serves no TLS and only SCRAM users it has been given (see FACTS.md), so
the worker's transport settings are checked against this instead: a TLS server with a
certificate from a throw-away CA (made by :mod:`pipeline.shell.pki`) that answers
``ApiVersions``, ``SaslHandshake`` (offering the mechanism asked for) and ``SaslAuthenticate``
(recording the client's first message, then refusing). It records, per connection, whether
the TLS handshake completed, the client id, the mechanism and the authentication bytes, which
is what reaches the wire from the client's configuration. Nothing here is a broker: no
request after authentication is served."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    ApiVersionResponse_v1,
    SaslAuthenticateResponse_v0,
    SaslAuthenticateResponse_v1,
    SaslHandShakeResponse_v1,
)

from pipeline.shell.pki import CertificateAuthority

_API_VERSIONS: Final = 18
_SASL_HANDSHAKE: Final = 17
_SASL_AUTHENTICATE: Final = 36
_SASL_AUTHENTICATION_FAILED: Final = 58


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 it signed, and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(folder: Path, name: str = "cdrveil-test-ca") -> Pki:
    """Write a fresh CA and certificates into ``folder`` (PEM, keys unencrypted)."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority(name)
    pki = Pki(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
    pki.ca.write_bytes(authority.cert_pem)
    server = authority.issue("127.0.0.1", server=True)
    client = authority.issue("cdrveil-worker", server=False)
    pki.server_cert.write_bytes(server.cert)
    pki.server_key.write_bytes(server.key)
    pki.client_cert.write_bytes(client.cert)
    pki.client_key.write_bytes(client.key)
    for key_file in (pki.server_key, pki.client_key):
        key_file.chmod(0o600)
    return pki


@dataclass
class Session:
    """What one client connection presented."""

    tls: bool = False
    client_certificate: dict[str, Any] | None = None
    client_ids: list[str] = field(default_factory=list)
    mechanism: str | None = None
    auth_bytes: list[bytes] = field(default_factory=list)


class SaslRecorder:
    """The recording listener on 127.0.0.1 (``async with``); TLS unless ``pki`` is None."""

    def __init__(self, pki: Pki | None, require_client_cert: bool = False) -> None:
        self.pki = pki
        self.require_client_cert = require_client_cert
        self.sessions: list[Session] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> SaslRecorder:
        context = None
        if self.pki is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
            if self.require_client_cert:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(self.pki.ca)
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=context, ssl_handshake_timeout=5
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session()
        tls = writer.get_extra_info("ssl_object")
        if tls is not None:
            session.tls = True
            session.client_certificate = tls.getpeercert()
        self.sessions.append(session)
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                api_key, version, correlation = struct.unpack(">hhi", frame[:8])
                (id_length,) = struct.unpack(">h", frame[8:10])
                client_id = frame[10 : 10 + max(id_length, 0)].decode("utf-8", "replace")
                body = frame[10 + max(id_length, 0) :]
                if client_id not in session.client_ids:
                    session.client_ids.append(client_id)
                answer = self._answer(session, api_key, version, body)
                if answer is None:
                    break
                payload = struct.pack(">i", correlation) + answer
                writer.write(struct.pack(">i", len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, session: Session, api_key: int, version: int, body: bytes) -> bytes | None:
        response: Any
        if api_key == _API_VERSIONS:
            versions = [(_API_VERSIONS, 0, 2), (_SASL_HANDSHAKE, 0, 1), (_SASL_AUTHENTICATE, 0, 1)]
            if version == 0:
                response = ApiVersionResponse_v0(0, versions)
            else:
                response = ApiVersionResponse_v1(0, versions, 0)
        elif api_key == _SASL_HANDSHAKE:
            (length,) = struct.unpack(">h", body[:2])
            session.mechanism = body[2 : 2 + length].decode()
            response = SaslHandShakeResponse_v1(0, [session.mechanism])
        elif api_key == _SASL_AUTHENTICATE:
            (length,) = struct.unpack(">i", body[:4])
            session.auth_bytes.append(body[4 : 4 + length])
            refused = (_SASL_AUTHENTICATION_FAILED, "recorded by the test listener; not a broker")
            if version == 0:
                response = SaslAuthenticateResponse_v0(*refused, b"")
            else:
                response = SaslAuthenticateResponse_v1(*refused, b"", 0)
        else:
            return None
        return bytes(response.encode())

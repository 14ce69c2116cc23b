"""The IMAP source (imapclient): connect, select, list UIDs, fetch with BODY.PEEK[], move, IDLE."""

from __future__ import annotations

import imaplib
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailbot.config import ImapSettings, SmtpSettings, is_loopback
from mailbot.errors import ConfigError, MailbotError, TransientError

if TYPE_CHECKING:
    from mailbot.auth import TokenSource

log = logging.getLogger(__name__)
FETCH_CHUNK = 50


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    internaldate: datetime | None


@dataclass
class FetchBatch:
    """One chunk of a fetch: the mails that came, and the UIDs whose FETCH failed on their
    own (UID -> the error), while the server went on answering (SCENARIOS I10)."""

    mails: list[FetchedMail]
    failed: dict[int, str]


@dataclass(frozen=True)
class Fingerprint:
    """What a cheap FETCH tells of the mail at a UID without its body (SCENARIOS I2)."""

    message_id: str
    size: int
    deleted: bool


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """The one client context for IMAP and SMTP: the system's CAs plus those in `ca_file`
    (PEM), certificate and host-name verification on, TLS 1.2 at least (RFC 8996 retires 1.0
    and 1.1; RFC 8314 section 4.1 asks mail clients to check the server's name; SCENARIOS
    G7, O6).

    Raises OSError (ssl.SSLError) when `ca_file` cannot be loaded; load_settings has
    checked it, so that means the file changed since."""
    # create_default_context(cafile=...) would trust ONLY that file: load the system's
    # store first, then add the municipal CA to it.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# OpenSSL's verify codes (X509_V_ERR_*), grouped by what the operator has to do
_NAME_MISMATCH = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}  # no issuer / self-signed / not verifiable locally
_EXPIRED, _NOT_YET_VALID = 10, 9
# what OpenSSL reports when the server speaks only SSL 3, TLS 1.0 or 1.1
_OLD_PROTOCOL = {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW",
                 "NO_PROTOCOLS_AVAILABLE", "WRONG_SSL_VERSION"}
# what it reports when the answer is not TLS at all (a plain-text port)
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
            "HTTP_REQUEST", "UNKNOWN_PROTOCOL"}
_IMPLICIT_PORT = {"imap": 993, "smtp": 465}


def tls_problem(err: BaseException, section: str, server: ImapSettings | SmtpSettings,
                source: str) -> ConfigError | None:
    """The operator's error for a TLS failure anywhere in `err`'s chain (the libraries wrap
    ssl errors: aiosmtplib's SMTPConnectError, our TransientError), or None when the
    failure is not about TLS. `section` is "imap" or "smtp".

    A missing STARTTLS (RFC 2595 for IMAP, RFC 3207 for SMTP) is an error, never a reason
    to log in without TLS."""
    causes = list(_chain(err))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _certificate_problem(cause, section, server, source)
        if isinstance(cause, ssl.SSLError):
            return _handshake_problem(cause, section, server, source)
    if server.security != "starttls":
        return None
    # imapclient: CapabilityError "Server does not support STARTTLS capability" (or
    # "starttls failed: ..." for a refused command); aiosmtplib: SMTPException "SMTP
    # STARTTLS extension not supported by server." (tests/e2e/test_tls.py pins both)
    refused = next((cause for cause in causes if not isinstance(cause, MailbotError)
                    and "starttls" in str(cause).lower()), None)
    if refused is None:
        return None
    rfc = "RFC 2595" if section == "imap" else "RFC 3207"
    return ConfigError(
        source, f"{section}.security",
        f"{server.host}:{server.port} does not offer STARTTLS ({rfc}: {refused}); nothing "
        "was sent without TLS",
        f'use security = "ssl" with the server\'s implicit-TLS port '
        f"({_IMPLICIT_PORT[section]}), or ask its administrator to offer STARTTLS")


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _certificate_problem(err: ssl.SSLCertVerificationError, section: str,
                         server: ImapSettings | SmtpSettings, source: str) -> ConfigError:
    host_key, ca_key = f"{section}.host", f"{section}.ca_file"
    which, problem, fix = certificate_verdict(err, f"{server.host}:{server.port}", server.host,
                                              server.ca_file, host_key, ca_key)
    return ConfigError(source, ca_key if which == "ca_file" else host_key, problem, fix)


def certificate_verdict(err: ssl.SSLCertVerificationError, where: str, host: str,
                        ca_file: Path | None, host_key: str, ca_key: str
                        ) -> tuple[str, str, str]:
    """Why a server's certificate was refused, for the operator: ("host" | "ca_file", the
    problem, the fix), from OpenSSL's verify code (X509_V_ERR_*). Used for the IMAP and SMTP
    servers and the OAuth2 token endpoint alike."""
    code, subject = err.verify_code, f"the certificate of {where}"
    if code in _NAME_MISMATCH:
        return ("host", f"{subject} is not issued to {host}",
                f"set {host_key} to the name on the server's certificate (the name its "
                "administrator gives, not an IP address or alias)")
    if code in _UNKNOWN_ISSUER:
        trusted = (f"neither the system nor {ca_file} trusts its issuer" if ca_file
                   else "the system does not trust its issuer")
        return ("ca_file", f"{subject} is not trusted: {trusted}",
                f"set {ca_key} to the PEM file of the CA that issued it (the municipality's "
                "CA; ask the server's administrator)")
    if code == _EXPIRED:
        return ("host", f"{subject} has expired",
                "ask the server's administrator to renew the certificate")
    if code == _NOT_YET_VALID:
        return ("host", f"{subject} is not valid yet",
                "check this machine's clock, or ask the server's administrator")
    return ("host", f"{subject} was refused ({err.verify_message})",
            "ask the server's administrator for a valid certificate")


def _handshake_problem(err: ssl.SSLError, section: str, server: ImapSettings | SmtpSettings,
                       source: str) -> ConfigError:
    where = f"{server.host}:{server.port}"
    reason = str(err.reason or err)
    if reason in _OLD_PROTOCOL:
        return ConfigError(source, f"{section}.host",
                           f"{where} offers only TLS older than 1.2 ({reason})",
                           "the server must offer TLS 1.2 or newer (RFC 8996): ask its "
                           "administrator")
    if reason in _NOT_TLS and server.security == "ssl":
        return ConfigError(source, f"{section}.security",
                           f"{where} does not answer with TLS ({reason})",
                           f'use security = "starttls" for a port that starts in plain text '
                           f"(143, 587), or the implicit-TLS port ({_IMPLICIT_PORT[section]})")
    return ConfigError(source, f"{section}.host", f"TLS with {where} failed ({reason})",
                       f"check {section}.port and {section}.security, or ask the server's "
                       "administrator")


def unreachable(err: BaseException, section: str, server: ImapSettings | SmtpSettings,
                source: str) -> ConfigError:
    """No connection at start. A plain-text greeting that never comes on an implicit-TLS port
    (993, 465) is the likely `starttls` typo: the server waits for a TLS handshake."""
    text = str(err)
    if server.security == "starttls" and "timed out" in text.lower():
        return ConfigError(source, f"{section}.security",
                           f"{server.host}:{server.port} sent no greeting ({text}); it may be "
                           "an implicit-TLS port",
                           f'use security = "ssl" for port {_IMPLICIT_PORT[section]}, or the '
                           "server's STARTTLS port with starttls")
    return ConfigError(source, f"{section}.host",
                       text if section == "imap" else f"cannot reach {server.host}:"
                       f"{server.port} ({text})",
                       f"check {section}.host, {section}.port and {section}.security")


def warn_plaintext(section: str, server: ImapSettings | SmtpSettings) -> None:
    """Log, at every start, that allow_plaintext_remote lets mail and password travel
    unencrypted to a host that is not this machine."""
    if server.security == "none" and not is_loopback(server.host):
        log.warning("%s.security = \"none\": the password and the mail go to %s unencrypted "
                    "(allowed by %s.allow_plaintext_remote)", section, server.host, section)


class Mailbox:
    """One connection to one watched folder. Every library error leaves as TransientError,
    except a refused login or a missing folder, which the operator must fix (ConfigError).

    `tokens`: the process's OAuth2 token source, required when imap.auth is "oauth2". Each
    connect asks it for the token, so a reconnect after a long IDLE logs in with a fresh one.
    """

    def __init__(self, settings: ImapSettings, source: str = "config",
                 tokens: TokenSource | None = None) -> None:
        self.settings = settings
        self.source = source
        self.tokens = tokens
        self.client: IMAPClient | None = None
        self.uidvalidity = 0

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        client = self._reach()
        if self.settings.auth == "oauth2":
            client = self._oauth2_login(client)
        else:
            self._password_login(client)
        self.client = client
        self.select()

    def _reach(self) -> IMAPClient:
        """A connection, TLS as configured, not logged in. Raises TransientError."""
        s = self.settings
        try:
            client = IMAPClient(
                s.host, port=s.port, ssl=s.security == "ssl",
                ssl_context=tls_context(s.ca_file) if s.security == "ssl" else None,
                timeout=s.timeout_seconds,
            )
        except (OSError, IMAPClientError, imaplib.IMAP4.error) as err:
            raise TransientError(f"cannot reach IMAP server {s.host}:{s.port}: {err}") from err
        if s.security == "starttls":
            try:
                # raises CapabilityError when the server does not offer STARTTLS: login
                # below is never reached without TLS (RFC 2595 section 3.1)
                client.starttls(tls_context(s.ca_file))
            except (OSError, IMAPClientError, imaplib.IMAP4.error) as err:
                with suppress(OSError):
                    client.shutdown()
                raise TransientError(f"STARTTLS with IMAP server {s.host}:{s.port} failed: "
                                     f"{err}") from err
        return client

    def _password_login(self, client: IMAPClient) -> None:
        s = self.settings
        try:
            client.login(s.username, s.password.get_secret_value())
        except LoginError as err:
            client.shutdown()
            raise ConfigError(self.source, "imap.password",
                              f"the IMAP server refused the login of {s.username!r}",
                              "check imap.username and imap.password") from err
        except (OSError, IMAPClientError, imaplib.IMAP4.error) as err:
            client.shutdown()
            raise TransientError(f"IMAP login failed: {err}") from err

    def _oauth2_login(self, client: IMAPClient) -> IMAPClient:
        """AUTHENTICATE XOAUTH2 (Google's XOAUTH2 protocol; Microsoft's "Authenticate an IMAP,
        POP or SMTP connection using OAuth"): base64 of `user=<mailbox>^Aauth=Bearer
        <token>^A^A`. A refused token is dropped and the login tried once more, on a new
        connection, with a new one; then the refusal is the operator's (auth.imap_refused).

        Returns the logged-in client (a new one after a retry). Raises ConfigError,
        TransientError (also TokenEndpointDown)."""
        from mailbot.auth import imap_refused

        s, tokens = self.settings, self._token_source()
        for attempt in (1, 2):
            try:
                if b"AUTH=XOAUTH2" not in client.capabilities():
                    raise ConfigError(self.source, "imap.auth",
                                      f"{s.host} does not offer AUTH=XOAUTH2",
                                      'set imap.auth = "password", or use a server that offers '
                                      "it (Exchange Online: outlook.office365.com)")
                client.oauth2_login(s.username, tokens.token())
                return client
            except LoginError as err:
                client.shutdown()
                if attempt == 2:
                    raise imap_refused(tokens, s.username, _server_text(err)) from err
                tokens.invalidate()
                client = self._reach()
            except (OSError, IMAPClientError, imaplib.IMAP4.error) as err:
                client.shutdown()
                raise TransientError(f"IMAP login failed: {err}") from err
            except Exception:
                client.shutdown()  # a refused token request, say: no half-open connection
                raise
        raise AssertionError("unreachable")

    def _token_source(self) -> TokenSource:
        if self.tokens is None:
            raise ConfigError(self.source, "imap.auth", 'is "oauth2", but no [oauth2] token '
                              "source was built", "report this as a bug in mailbot")
        return self.tokens

    def open(self, at_start: bool = False) -> None:
        """Log in, select the folder, create Processed/Quarantine when missing (R15).

        `at_start`: an unreachable server or token endpoint, or a TLS failure (the
        certificate, the protocol version, a missing STARTTLS), is the operator's to fix
        (check, start of run): a one-line ConfigError naming the key; later it is transient
        and retried."""
        from mailbot.auth import TokenEndpointDown

        if at_start:
            warn_plaintext("imap", self.settings)
        try:
            self.connect()
        except TokenEndpointDown as err:
            if not at_start:
                raise
            raise err.config_error from err
        except TransientError as err:
            if not at_start:
                raise
            raise tls_problem(err, "imap", self.settings, self.source) or unreachable(
                err, "imap", self.settings, self.source) from err
        missing = self.ensure_folders(create=True)
        if missing:
            self.close()
            raise ConfigError(self.source, "imap.processed_folder",
                              f"folders {missing} are missing and cannot be created",
                              "create them on the server or name existing folders")

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise TransientError("not connected to the IMAP server")
        return self.client

    def select(self) -> int:
        folder = self.settings.folder
        try:
            info = self._client().select_folder(folder)
        except IMAPClientError as err:
            if self.tokens is not None and _is_not_connected(err):
                from mailbot.auth import not_connected

                self.close()
                raise not_connected(self.tokens, self.settings.username) from err
            raise ConfigError(self.source, "imap.folder", f"cannot open folder {folder!r}: {err}",
                              "spell the folder as the server shows it (often INBOX)") from err
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        return self.uidvalidity

    def close(self) -> None:
        if self.client is None:
            return
        client, self.client = self.client, None
        try:
            client.logout()
        except (OSError, IMAPClientError, imaplib.IMAP4.error):
            client.shutdown()

    def ensure_folders(self, create: bool) -> list[str]:
        """Names of the target folders that are missing (after creating them, if allowed)."""
        missing = []
        for key in ("processed_folder", "quarantine_folder"):
            name = getattr(self.settings, key)
            with self._errors("checking folders"):
                exists = self._client().folder_exists(name)
                if not exists and create:
                    self._client().create_folder(name)
                    log.info("created IMAP folder %s", name)
                    exists = True
            if not exists:
                missing.append(name)
        return missing

    # -- reading ----------------------------------------------------------------------------
    def all_uids(self) -> list[int]:
        """Every UID in the folder: not UNSEEN, since a person may have opened the mail (I3)."""
        with self._errors("SEARCH"):
            # An EXISTS seen from here on announces mail this SEARCH may not include.
            self._exists_announced()
            found = self._client().search("ALL")
        return sorted(int(u) for u in found)

    def wait_for_message_id(self, message_id: str, timeout: float) -> bool:
        """Poll for a mail by Message-ID; when it arrives, delete it (that UID only)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._errors("SEARCH HEADER"):
                self._client().noop()
                found = self._client().search(["HEADER", "Message-ID", message_id])
            if found:
                with self._errors("removing the probe"):
                    self._client().add_flags(found, [b"\\Deleted"], silent=True)
                    if self._client().has_capability("UIDPLUS"):
                        self._client().uid_expunge(found)
                return True
            time.sleep(0.5)
        return False

    def sizes(self, uids: list[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for chunk in _chunks(uids):
            with self._errors("FETCH RFC822.SIZE"):
                data = self._client().fetch(chunk, ["RFC822.SIZE"])
            out.update({int(uid): int(item[b"RFC822.SIZE"]) for uid, item in data.items()})
        return out

    def fetch(self, uids: list[int]) -> Iterator[FetchBatch]:
        """BODY.PEEK[] so \\Seen stays as it was (I4); in chunks so memory stays flat (I12).

        A chunk whose FETCH fails is fetched again one UID at a time on a new connection, so
        one mail whose response the client cannot parse (Zammad #2754, "unknown token")
        costs only that UID (SCENARIOS I10): it is reported in `failed`, the others come.
        When the server itself is away, the reconnect raises TransientError as before."""
        for chunk in _chunks(uids):
            try:
                mails = self._bodies(chunk)
            except TransientError as err:
                log.warning("FETCH of UIDs %s..%s failed (%s); fetching them one by one",
                            chunk[0], chunk[-1], err)
                yield self._one_by_one(chunk)
                continue
            yield FetchBatch(mails, {})

    def _one_by_one(self, chunk: list[int]) -> FetchBatch:
        batch = FetchBatch([], {})
        for uid in chunk:
            if self.client is None:
                self.reconnect()
            try:
                batch.mails += self._bodies([uid])
            except TransientError as err:
                batch.failed[uid] = str(err)
        if self.client is None:
            self.reconnect()
        return batch

    def _bodies(self, uids: list[int]) -> list[FetchedMail]:
        # ValueError: imapclient could read the response but not one of its values (an
        # INTERNALDATE it cannot parse)
        with self._errors("FETCH BODY.PEEK[]", also=(ValueError,)):
            data = self._client().fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
            return [
                FetchedMail(uid, bytes(item[b"BODY[]"]), _aware(item.get(b"INTERNALDATE")))
                for uid in uids
                # a UID expunged by someone else meanwhile comes back without a body
                if (item := data.get(uid)) is not None and b"BODY[]" in item
            ]

    def reconnect(self) -> None:
        """A new connection to the same folder after a dropped one. Raises TransientError
        when the folder's UIDVALIDITY changed meanwhile: every UID of this sweep is void
        (RFC 3501 section 2.3.1.1)."""
        before = self.uidvalidity
        self.close()
        self.connect()
        if self.uidvalidity != before:
            raise TransientError(f"UIDVALIDITY of {self.settings.folder} changed from "
                                 f"{before} to {self.uidvalidity} during the sweep")

    def fingerprints(self, uids: list[int]) -> dict[int, Fingerprint]:
        """Message-ID, RFC822.SIZE and the \\Deleted flag of each UID, without the body: to
        tell whether the mail at a UID the ledger knows is the mail the ledger stored
        (SCENARIOS I2). A UID gone meanwhile is left out."""
        out: dict[int, Fingerprint] = {}
        wanted = ["RFC822.SIZE", "FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        for chunk in _chunks(uids):
            with self._errors("FETCH fingerprints", also=(ValueError,)):
                data = self._client().fetch(chunk, wanted)
            for uid in chunk:
                item = data.get(uid)
                if item is None or b"RFC822.SIZE" not in item:
                    continue
                header = next((bytes(v) for k, v in item.items()
                               if isinstance(k, bytes) and k.startswith(b"BODY[HEADER")), b"")
                out[uid] = Fingerprint(_message_id(header), int(item[b"RFC822.SIZE"]),
                                       b"\\Deleted" in item.get(b"FLAGS", ()))
        return out

    def count_message_id(self, folder: str, message_id: str) -> int:
        """How many mails in `folder` carry this Message-ID (SEARCH HEADER after a read-only
        EXAMINE); the watched folder is selected again afterwards (SCENARIOS C2)."""
        client = self._client()
        with self._errors(f"looking for {message_id} in {folder}"):
            client.select_folder(folder, readonly=True)
            try:
                found = client.search(["HEADER", "Message-ID", message_id])
            finally:
                info = client.select_folder(self.settings.folder)
        if int(info[b"UIDVALIDITY"]) != self.uidvalidity:
            raise TransientError(f"UIDVALIDITY of {self.settings.folder} changed during the "
                                 "sweep")
        return len(found)

    def delete_copies(self, folder: str, mails: list[tuple[str, int]]) -> int:
        """Delete from `folder` the mails with these (Message-ID, RFC822.SIZE): retention and
        erasure of a handled mail's copy in Processed or Quarantine (mailbot.privacy).

        A Message-ID alone could name another person's mail (a sender may reuse one, R7), so
        a UID is deleted only when its size is the size the ledger stored too. A pair given n
        times deletes at most n copies: a mail delivered twice (To and Cc) has two identical
        copies, one per ledger row, and the other row may not be due yet. \\Deleted and UID
        EXPUNGE of exactly those UIDs (RFC 4315 section 2.1); without UIDPLUS they stay
        flagged \\Deleted, since a plain EXPUNGE would also remove mails a person flagged.
        Returns how many were deleted; a mail not found was gone already. Leaves `folder`
        selected. Raises TransientError when the server fails."""
        client = self._client()
        doomed: list[int] = []
        with self._errors(f"deleting {len(mails)} mails from {folder}"):
            client.select_folder(folder)
            for (message_id, size), wanted in Counter(mails).items():
                doomed += self._copies(message_id, size)[:wanted]
            if doomed:
                client.add_flags(doomed, [b"\\Deleted"], silent=True)
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(doomed)
                else:
                    log.warning("server lacks UIDPLUS: UIDs %s left flagged \\Deleted in %s",
                                doomed, folder)
        return len(doomed)

    def _copies(self, message_id: str, size: int) -> list[int]:
        """The UIDs, lowest first, of the selected folder's mails with this Message-ID and
        RFC822.SIZE (delete_copies says why both)."""
        client = self._client()
        found = [int(u) for u in client.search(["HEADER", "Message-ID", message_id])]
        if not found:
            return []
        sizes = client.fetch(found, ["RFC822.SIZE"])
        return [uid for uid in sorted(found)
                if int(sizes.get(uid, {}).get(b"RFC822.SIZE", -1)) == size]

    def move_copy(self, source: str, message_id: str, size: int, target: str) -> bool:
        """Move ONE mail with this (Message-ID, RFC822.SIZE) from `source` to `target` (a
        released quarantined mail back to the watched folder, mailbot.admin), as `move`
        moves. False when `source` holds none (gone already). Leaves `source` selected.
        Raises TransientError when the server fails."""
        client = self._client()
        with self._errors(f"moving a mail from {source} to {target}"):
            client.select_folder(source)
            found = self._copies(message_id, size)
            if not found:
                return False
        self.move(found[:1], target)
        return True

    # -- moving -----------------------------------------------------------------------------
    def move(self, uids: list[int], folder: str) -> set[int] | None:
        """UID MOVE (RFC 6851); without it COPY + \\Deleted + UID EXPUNGE of these UIDs only
        (I5). Returns the UIDs the server says it moved, or None when it cannot say.

        The server names them in COPYUID (RFC 4315 section 3, UIDPLUS; RFC 6851 section 4.3
        for MOVE). A UID that another client removed first is simply not in it: UID MOVE and
        UID COPY of a UID that no longer exists answer OK (RFC 3501 section 6.4.8), so only
        COPYUID tells "moved by me" from "already gone" (SCENARIOS I6, C2). A server
        without UIDPLUS sends no COPYUID: None."""
        client = self._client()
        with self._errors(f"moving {len(uids)} mails to {folder}"):
            # imaplib files every [COPYUID ...] response code under "COPYUID" and never
            # clears it: forget older ones, read this command's after it
            client._imap.untagged_responses.pop("COPYUID", None)
            if client.has_capability("MOVE"):
                return self._move(client, uids, folder)
            self._retry_expunged(client, lambda: client.copy(uids, folder))
            moved = self._copyuid_sources(client)
            client.add_flags(uids, [b"\\Deleted"], silent=True)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                # A plain EXPUNGE would also remove mails a person flagged \Deleted.
                log.warning("server lacks UIDPLUS: UIDs %s left flagged \\Deleted in %s",
                            uids, self.settings.folder)
            return moved

    def _move(self, client: IMAPClient, uids: list[int], folder: str) -> set[int] | None:
        self._retry_expunged(client, lambda: client.move(uids, folder))
        return self._copyuid_sources(client)

    @staticmethod
    def _retry_expunged(client: IMAPClient, command: Callable[[], object]) -> None:
        """Run `command`; when the server refuses it with NO [EXPUNGEISSUED] (RFC 5530
        section 3: another client expunged some of these UIDs and this session has not been
        told yet; Dovecot does this), NOOP to take in the EXPUNGE and run it once more: the
        UIDs that are gone are then simply absent from COPYUID (SCENARIOS I6)."""
        try:
            command()
        except IMAPClientError as err:
            if "EXPUNGEISSUED" not in str(err):
                raise
            log.info("%s; taking in the expunges and trying again", err)
            client.noop()
            command()

    def _copyuid_sources(self, client: IMAPClient) -> set[int] | None:
        """The source UIDs of the COPYUID codes the last command got ("uidvalidity
        source-set dest-set", RFC 4315 section 3), or None without UIDPLUS."""
        codes = client._imap.untagged_responses.pop("COPYUID", None)
        if not client.has_capability("UIDPLUS"):
            return None
        moved: set[int] = set()
        for code in codes or []:
            parts = (code.decode("ascii", "replace") if isinstance(code, bytes)
                     else str(code)).split()
            if len(parts) >= 2:
                moved |= _uid_set(parts[1])
        return moved

    # -- waiting ----------------------------------------------------------------------------
    @property
    def can_idle(self) -> bool:
        return self.settings.idle and self._client().has_capability("IDLE")

    def idle_start(self) -> bool:
        """Enter IDLE; True when the server announced new mail since the last SEARCH.

        imaplib files an "* N EXISTS" that comes with the answer to another command (after
        the SEARCH result, or before IDLE's "+ idling") into `untagged_responses`, where
        imapclient's idle_check() never looks. Dovecot sends exactly that for a mail that
        lands during the SEARCH; without this check such a mail waits minutes.
        """
        client = self._client()
        with self._errors("IDLE"):
            client.idle()
        return self._exists_announced()

    def _exists_announced(self) -> bool:
        """Whether the server sent "* N EXISTS" since the last SEARCH; forgets it."""
        return self._client()._imap.untagged_responses.pop("EXISTS", None) is not None

    def idle_wait(self, seconds: float) -> bool:
        """True when the server reported a change within `seconds`."""
        responses: list[object] = []
        with self._errors("IDLE wait"):
            responses = self._client().idle_check(timeout=seconds)
        return bool(responses)

    def idle_stop(self) -> bool:
        """Leave IDLE; True when the answer to DONE announced new mail (Dovecot reports a
        mail that arrived while it was setting up IDLE only there)."""
        with self._errors("IDLE DONE"):
            _text, responses = self._client().idle_done()
        return any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS" for r in responses)

    def noop(self) -> None:
        with self._errors("NOOP"):
            self._client().noop()

    @contextmanager
    def _errors(self, action: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
        """Library and socket errors (and `also`) become TransientError; the broken
        connection is dropped."""
        try:
            yield
        except (OSError, IMAPClientError, imaplib.IMAP4.error, *also) as err:
            client, self.client = self.client, None
            if client is not None:
                with suppress(OSError):
                    client.shutdown()
            raise TransientError(f"IMAP {action} failed: {err}") from err


def _server_text(err: Exception) -> str:
    """The server's words in an imaplib/imapclient error, without Python's list quoting:
    "[b'AUTHENTICATE failed.']" -> "AUTHENTICATE failed."."""
    text = str(err)
    inner = text.partition("[b'")[2].rpartition("']")[0] or text.partition('[b"')[2].rpartition(
        '"]')[0]
    return inner or text


def _is_not_connected(err: Exception) -> bool:
    from mailbot.auth import NOT_CONNECTED

    return NOT_CONNECTED.lower() in str(err).lower()


def _aware(value: datetime | None) -> datetime | None:
    """imapclient gives INTERNALDATE as naive local time."""
    if value is None:
        return None
    return value.astimezone(UTC)


def _uid_set(text: str) -> set[int]:
    """An IMAP sequence set of UIDs ("4,7:9", RFC 3501 section 9 `sequence-set`)."""
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        with suppress(ValueError):
            first, last = int(low), int(high or low)
            out.update(range(min(first, last), max(first, last) + 1))
    return out


def _message_id(header: bytes) -> str:
    """The <...> of a `Message-ID:` header block, as parse.header_message_id reads it."""
    from mailbot.intake.parse import header_message_id

    return header_message_id(header + b"\r\n")


def _chunks(uids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(uids), FETCH_CHUNK):
        yield uids[start : start + FETCH_CHUNK]

"""Dovecot post-login script for the tests (tests/dovecot.py, POSTLOGIN): Exchange Online's
"User is authenticated but not connected", played after a login that really succeeded.

Dovecot runs it with the client's socket as stdin/stdout and the rest of the login to finish
as arguments (src/util/script-login.c). It hands the imap process one end of a socketpair
instead of the client, then relays: the imap process's lines go to the client unchanged (the
tagged "OK Logged in" among them); the client's commands go to imap only when they are
CAPABILITY, NOOP, LOGOUT or ID. Every other command is answered as Exchange answers it when
the app may not open the mailbox in the login (transcripts in MailKit #1494, imapsync #411):

    A3 BAD User is authenticated but not connected.
    A4 BAD User is authenticated but not connected.
    * BYE Connection closed. 14
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys

NOT_CONNECTED = b"BAD User is authenticated but not connected."
PASSED = {b"CAPABILITY", b"NOOP", b"LOGOUT", b"ID"}


def main(argv: list[str]) -> None:
    client = socket.socket(fileno=os.dup(0))
    ours, theirs = socket.socketpair()
    if os.fork() == 0:  # finish the login: script-login sends our fd 1 to the imap process
        ours.close()
        client.close()
        os.dup2(theirs.fileno(), 0)
        os.dup2(theirs.fileno(), 1)
        theirs.close()
        os.execv(argv[0], argv)
    theirs.close()
    for fd in (0, 1, 3):  # the client is `client` now; 3 talks to the imap process's master
        with contextlib.suppress(OSError):
            os.close(fd)
    relay(client, ours)


def relay(client: socket.socket, imap: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    selector.register(client, selectors.EVENT_READ)
    selector.register(imap, selectors.EVENT_READ)
    pending = b""
    refused = 0
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            if not data:
                return
            if sock is imap:
                client.sendall(data)
                continue
            pending += data
            while b"\r\n" in pending:
                line, pending = pending.split(b"\r\n", 1)
                tag, _, rest = line.partition(b" ")
                if rest.split(b" ", 1)[0].upper() in PASSED:
                    imap.sendall(line + b"\r\n")
                    continue
                client.sendall(tag + b" " + NOT_CONNECTED + b"\r\n")
                refused += 1
                if refused == 2:
                    client.sendall(b"* BYE Connection closed. 14\r\n")
                    client.close()
                    return


if __name__ == "__main__":
    main(sys.argv[1:])

"""Exceptions that say whether to retry.

TransientError: the world may look different later (server down, lock held) - retry.
PermanentError: this input will never work - quarantine it with the reason.
ConfigError: the operator must change something; the message names file, key and fix.
"""

from __future__ import annotations

# the `source` of a ConfigError about an argument or option the operator typed
COMMAND_LINE = "command line"


class MailbotError(Exception):
    """Base of every error the package raises on purpose."""


class TransientError(MailbotError):
    """Retry later: a server is down, a connection dropped, a lock is held."""


class PermanentError(MailbotError):
    """This input cannot be processed; quarantine it with this reason."""


class ConfigError(MailbotError):
    """The configuration is wrong. The text names the file, the key and the fix."""

    def __init__(self, source: str, key: str, problem: str, fix: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"{source}: [{key}] {problem}. Fix: {fix}")

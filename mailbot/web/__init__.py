"""The web endpoints: /healthz and /metrics for the operator's monitoring (mailbot.web.ops)
and the secretary's read-only overview (mailbot.web.pages), one Starlette app
(mailbot.web.app) served by the daemon or by `mailbot web` (mailbot.web.server)."""

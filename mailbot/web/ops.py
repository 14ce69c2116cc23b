"""/healthz and /metrics (issue #14): the operator's monitoring, no sign-in (serve them on
loopback or a management network: README "Operating mailbot")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.health import CRITICAL, evaluate
from mailbot.metrics import exposition, registry_for
from mailbot.redact import redact_data

if TYPE_CHECKING:
    from mailbot.app import Bot

# the Prometheus text exposition format, version 0.0.4 (prometheus_client.CONTENT_TYPE_LATEST
# names the same; spelled out here because newer clients may negotiate OpenMetrics)
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def routes(bot: Bot) -> list[BaseRoute]:
    """GET /healthz: mailbot.health's report as JSON (HealthReport.as_dict), HTTP 200 when
    ok or warning, 503 when critical (a load balancer or Kubernetes probe takes 2xx as
    up). GET /metrics: this process's metrics and the database's gauges (mailbot.metrics)
    in the Prometheus text format. Both are plain functions: Starlette runs them in its
    thread pool, so their database reads never block the server's loop."""
    registry = registry_for(bot.engine)

    def healthz(_request: Request) -> JSONResponse:
        report = evaluate(bot, bot.clock.now())
        return JSONResponse(redact_data(report.as_dict()),
                            status_code=503 if report.status >= CRITICAL else 200)

    def metrics(_request: Request) -> Response:
        return Response(exposition(registry), media_type=METRICS_TYPE)

    return [Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"])]

"""The admin API: health, readiness and metrics probes, reads of the groups' boards, versions,
decisions and commands, and one route per operator's command — served by uvicorn in a thread of
``headwater run`` (`AdminServer`) on ``admin.port``; `AdminService` assembles it for the daemon.

`create_app(settings, deps)` builds it over the daemon's collaborators (`ApiDeps`); routes live in
`daemon.api.routes`, one module per resource. docs/openapi.json is its OpenAPI document
(``python -m daemon.api.openapi`` writes it again; a test compares it).
"""

from daemon.api.app import create_app
from daemon.api.deps import ApiDeps, HttpMetrics
from daemon.api.health import BROKER_UNREACHABLE, NO_CHAMPION, RECOVERING, BrokerProbe, Readiness, serving_check
from daemon.api.producer import CommandSink, KafkaCommandSink
from daemon.api.reports import ModelReports, ReportFollower
from daemon.api.server import AdminServer
from daemon.api.service import AdminService

__all__ = [
    "BROKER_UNREACHABLE", "NO_CHAMPION", "RECOVERING", "AdminServer", "AdminService", "ApiDeps", "BrokerProbe",
    "CommandSink", "HttpMetrics", "KafkaCommandSink", "ModelReports", "Readiness", "ReportFollower", "create_app",
    "serving_check",
]  # fmt: skip

"""The admin API's routers, one per resource, in the order the OpenAPI document lists them."""

from daemon.api.routes import commands, config, decisions, groups, health, versions

__all__ = ["ROUTERS"]

ROUTERS = [health.router, groups.router, versions.router, decisions.router, commands.router, config.router]

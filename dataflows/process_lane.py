"""Where `start_lane_server` was before the lanes package: `dataflows.lanes.child` holds it now.

Kept for the callers that import it from here (the daemon's runner); new code imports
`dataflows.lanes.child.start_lane_server`.
"""

from dataflows.lanes.child import start_lane_server

__all__ = ["start_lane_server"]

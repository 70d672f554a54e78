"""A small stand-in of the SonarQube web API, for tests of the quality gate.

Serves the two endpoints the platform reads, with the JSON shapes of SonarQube 10:

- ``GET /api/ce/task?id=<task>``: ``{"task": {"id", "type", "status", "analysisId",
  "errorMessage", ...}}``. A task is configured with a list of statuses; each request moves it
  one step along (e.g. ``PENDING`` -> ``IN_PROGRESS`` -> ``SUCCESS``) and then it stays.
- ``GET /api/qualitygates/project_status?analysisId=<id>``: ``{"projectStatus": {"status",
  "conditions": [...]}}``.

Unknown ids answer 404 with ``{"errors": [{"msg": ...}]}``; a request without the token (HTTP
basic user name, or ``Authorization: Bearer``) answers 401.

Configuration and faults over HTTP (no token needed) or through :class:`SonarQubeStandIn`:

```
POST /sandbox/tasks   {"id": "T1", "statuses": ["PENDING", "SUCCESS"], "analysis_id": "A1",
                       "component": "order-service", "error_message": null}
POST /sandbox/gates   {"analysis_id": "A1", "status": "ERROR", "conditions": [...]}
POST /sandbox/faults  {"status": 429, "count": 2, "retry_after": 1}   # or 500/502/503/504
GET  /sandbox/requests                                              # what was asked, in order
```

Run it alone with ``python -m sandbox.sonarqube --port 0 [--token TOKEN]`` (a random token by
default); it prints ``{"url": ..., "token": ...}`` when it listens. In tests: ``with run_sonarqube() as sonar:``.
"""

from sandbox.sonarqube.server import SonarQubeStandIn, run_sonarqube

__all__ = ["SonarQubeStandIn", "run_sonarqube"]

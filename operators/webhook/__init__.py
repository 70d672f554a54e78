"""Git push webhooks: verify, parse, map to a catalog service and trigger the right DAG.

A push from GitHub, GitLab or Gitee arrives at ``POST /sre/webhooks/git`` (the FastAPI app in
:mod:`operators.webhook.app`, mounted on the api-server by ``plugins/git_webhook.py``). The
request is refused unless its signature or token matches the secret configured for its source;
then the payload is parsed into a :class:`~operators.webhook.payloads.PushEvent`, the repository
is matched to catalog services by normalized URL, and the pushed commit is handed to
``delivery_pipeline`` (release branches) or ``ci_build`` (any other branch).

The modules, one job each:

- :mod:`~operators.webhook.signatures`: constant-time checks of each source's signature or token;
- :mod:`~operators.webhook.secrets`: where each source's secret comes from (Airflow connection
  ``git_webhook_<source>``, password field; or variable ``git_webhook_<source>_secret``);
- :mod:`~operators.webhook.payloads`: headers and JSON body to a push event, refusing bad input;
- :mod:`~operators.webhook.repositories`: repository URL normalization and catalog lookup;
- :mod:`~operators.webhook.routing`: which DAG, which conf and which run id a push gets;
- :mod:`~operators.webhook.triggering`: starting the DAG run through Airflow's own trigger call;
- :mod:`~operators.webhook.audit`: one audit record per call, accepted or refused;
- :mod:`~operators.webhook.app`: the HTTP endpoint tying them together.
"""

"""The dual-site release: rollout and rollback of a site's Deployment, traffic steps, preflight, approvals.

Layers: :mod:`status` judges a rollout from API objects; :mod:`kube` gives one explicit API client
per site; :mod:`triggers` waits on a rollout with watches; :mod:`rollout`, :mod:`traffic`,
:mod:`preflight`, :mod:`approval` and :mod:`migrate` hold the operators the release task group
(``dags/stages/release.py``) wires together; :mod:`freeze` reads the freeze windows and
:mod:`records` states what the release needs from the platform records.
"""

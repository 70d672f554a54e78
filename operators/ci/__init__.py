"""Continuous integration on Kubernetes: catalog steps run as pods, their results judged.

- ``step``: ``StepPodOperator`` (a ``KubernetesPodOperator``) runs a service's catalog step as a
  pod in the CI cluster: checkout by init containers, reattach after restarts, one-line failures,
  result parsing, records.
- ``tasks``: ``CiStepOperator``, the same step as DAG files declare it, without importing the
  Kubernetes clients at parse time.
- ``pod_manager`` / ``triggers``: the synchronous and the deferred log followers (every pod line
  once, in order, in constant memory, through dropped streams and throttling).
- ``logstream``: the pure parts both followers share (line splitting, the re-read cursor, the
  ``::sre-result::`` collector).
- ``results``: JUnit, Cobertura, SARIF and bandit parsers (hostile XML refused).
- ``failure``: the one-line reason a pod failed; ``naming``: pod names and label values.
- ``quality``: ``QualityGateOperator``; ``sonarqube``: the SonarQube client, hook and trigger.
- ``records``: what the CI stages write to the platform records; ``retry``: transient answers.

The DAG wiring is in ``dags/stages/ci.py`` (task ids and XCom keys are listed there).
"""

"""Housekeeping run by the ``cleanup`` DAG: finished CI pods and jobs, and old platform records.

- :mod:`~operators.cleanup.kubernetes`: :class:`CiPodCleanupOperator` deletes pods and Jobs in
  the CI namespace that match a label selector, have finished, and finished longer ago than a
  retention. Running or pending ones, and anything the selector does not match, are never
  touched.
- :mod:`~operators.cleanup.records`: :class:`RecordsPurgeOperator` deletes platform records
  older than a retention, in batches, through the records store's transactions; what a site
  still runs is kept.
"""

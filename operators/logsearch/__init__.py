"""Task logs in Elasticsearch: settings, search across runs, and the Kibana extra link.

- :mod:`operators.logsearch.settings`: the remote-logging settings as Airflow reads them, and
  an ``elasticsearch-py`` client built like the provider's log handler builds it;
- :mod:`operators.logsearch.search`: :class:`~operators.logsearch.search.LogSearch`, lines by
  service, release, run, site and text (``python -m operators.logsearch --help``);
- :mod:`operators.logsearch.link`: :class:`~operators.logsearch.link.TaskLogLink`, registered for
  every task by ``plugins/log_links.py``;
- :mod:`operators.logsearch.setup`: installs the index template (and a Kibana data view).
"""

"""Task-group factories shared by the DAGs: each stage is wired once and reused.

``ci`` builds the build/test/scan groups, ``release`` the dual-site release group. A standalone
DAG (``ci_build``, ``dual_site_release``...) and the ``delivery_pipeline`` call the same
factories, so a stage behaves the same wherever it runs.
"""

"""Site verification: HTTP health checks and error-rate comparison between the two sites."""

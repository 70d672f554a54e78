"""`python -m hello_api`: run the service until SIGTERM."""

from hello_api.server import main

raise SystemExit(main())

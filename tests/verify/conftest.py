from tests.gateway.fixtures import backends, catalog, connections, driver, gateway  # noqa: F401

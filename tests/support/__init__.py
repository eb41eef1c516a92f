"""Plain helpers shared by the test folders, one module per concern. Fixtures are in ``tests/fixtures/``
(loaded for every folder by ``tests/conftest.py``)."""

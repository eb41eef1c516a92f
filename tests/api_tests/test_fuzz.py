"""A bounded schemathesis run over every operation of the live test app, authenticated with a token.

It loads the schema the app serves (/api/schema/) through the WSGI application and, for each operation,
generates a few valid and a few invalid requests and runs all of schemathesis' checks on each answer: no 5xx,
only documented status codes, content types and headers, bodies that match the documented schema (errors
included), invalid data refused, valid data not refused as invalid, and credentials actually required.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from accounts.services import create_token

# Real WSGI requests close the database connection when they end, so the data is committed (transactional_db).
pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 3

# A file that fits the schema (any bytes) is still refused when it is not a model, corpus or test set: the
# uploads' content rules are more than a schema can say, so "schema-valid data is accepted" does not apply there.
CONTENT_CHECKED_UPLOADS = {"/api/v1/uploads/models/", "/api/v1/uploads/corpora/", "/api/v1/uploads/test-sets/"}


def run_operation(operation, mode, user):
    skipped = []
    if operation.method.upper() == "POST" and operation.path in CONTENT_CHECKED_UPLOADS:
        skipped.append(schemathesis.checks.positive_data_acceptance)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case):
        _, secret = create_token(user, "fuzz")  # a fresh token each time: a case may revoke the one it used
        case.call_and_validate(headers={"Authorization": f"Token {secret}"}, excluded_checks=skipped)

    call()


def test_every_operation_keeps_the_documented_contract(transactional_db, user):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run_operation(operation, mode, user)
            except Unsatisfiable:  # nothing in this operation can be made invalid
                continue
            except (AssertionError, FailureGroup) as error:  # report every operation's failures, not the first
                failures.append(f"{operation.label} [{mode.value}]: {error}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)

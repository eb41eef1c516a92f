"""A bounded schemathesis run over every operation of the live test app, authenticated with a token.

It loads the schema the app serves (/api/schema/) through the WSGI application and, for each operation,
generates a few valid and a few invalid requests and runs all of schemathesis' checks on each answer: no 5xx,
only documented status codes, content types and headers, bodies that match the documented schema (errors
included), invalid data refused, credentials actually required, and (on reads) valid data not refused.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from accounts.services import create_token

pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 3

# "Schema-valid data is accepted" is checked on reads only. A write can fit the schema and still be refused with a
# documented 400 naming the field: a past expiry, a blank name, an unknown username, bytes that are not a model.
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def run_operation(operation, mode, user):
    skipped = [schemathesis.checks.positive_data_acceptance] if operation.method.upper() in WRITES else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case):
        _, secret = create_token(user, "fuzz")  # a fresh token each time: a case may revoke the one it used
        case.call_and_validate(headers={"Authorization": f"Token {secret}"}, excluded_checks=skipped)

    call()


def test_every_operation_keeps_the_documented_contract(transactional_db, user):
    # transactional_db: real WSGI requests close the database connection when they end, so data is committed.
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    schema.config.generation.update(allow_x00=False)  # Django refuses NUL in every text field, as it should
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

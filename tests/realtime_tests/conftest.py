from tests.pipeline_tests.conftest import attached, folders, people, tiny_bert  # noqa: F401  (shared fixtures)

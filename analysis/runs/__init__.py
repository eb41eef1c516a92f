"""The pipeline: everything that changes a run's state, and the endpoints that ask for it.

``services`` (every write: create, claim, heartbeat, finish, cancel, retry, dispatch), ``selectors`` (runs as a
user may see them), ``runner`` (executes a claimed step of any kind, ``analysis.steps``, on a worker), the run
request (``forms`` for the page, ``serializers`` for the API, both derived from the engine's option
declarations), ``estimates`` (what a run will cost before it starts), ``consumers`` (the live log),
``realtime`` (typed sentences and manipulation answered by realtime workers), ``api`` and ``views`` (the
new-analysis page), ``example_projects``. Nothing here imports the read side (``analysis.workspace``).
"""

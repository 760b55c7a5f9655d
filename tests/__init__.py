"""The test suite: each ``test_*.py`` says in its docstring what it specifies.

What the tests share, each in one place:

``conftest.py``          fixtures: ``upstream`` and ``fakes`` (fake upstreams),
                         ``start_router``/``router`` (a real router on loopback),
                         ``browser``, ``spawn`` (routers as processes),
                         ``redis_server``, and the ``log_guard`` every test
                         runs under
``wire.py``              request bodies (``chat``, ``message``, ``body_for``) and
                         the endpoint paths
``answers.py``           reading an answer as the client got it
``waiting.py``           ``poll``: waiting for what happens after the answer
``configs.py``           router configs: ``base_config``, the failover layouts
``fake_upstream.py``     the scripted fake provider (``Reply``, canned streams)
``upstream_faults.py``   faults, retries, the breaker, limits, continuation:
                         scripted failures and what the log says about them
``access_support.py``    client keys and a raw HTTP client (access, metrics, Redis)
``redis_support.py``     a real ``redis-server`` to start and kill (``redis_server``
                         fixture in ``conftest.py``), and ``needs_redis``
``cache_support.py``     the response cache's configs, requests, and the SDKs'
                         view of an answer
``codec_fixtures.py``    the recorded bodies the codec tests read
``plugins_for_tests.py`` plugins that misbehave on purpose
``processes.py``         ``python -m tornrouter`` as a subprocess (``RouterProcess``),
                         its configs and logs, ``run_cli``
``log_guard.py``         fails a test whose router logged an unexpected traceback
``browser.py``           a headless chromium over CDP, for the dashboard
"""

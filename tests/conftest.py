"""The root of the test suite: loads the suite's plugins.

``plugins.services`` owns the policy for tests that need a service or an optional extra
(markers, skip on a laptop, fail under ``CI=true``, enforced markers): see its docstring.
``plugins.databases`` gives the ``postgres`` and ``mysql`` tests a fresh database each.
"""

pytest_plugins = ["plugins.services", "plugins.databases"]

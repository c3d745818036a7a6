"""A worker process of :func:`c360.identity.records.map_rows`: a pickled ``(function, rows)``
on stdin, the pickled list of ``function(*row)`` on stdout.

Started as ``python -m c360.identity.map_worker`` rather than through :mod:`multiprocessing`,
whose spawned children run the parent's main script again (a script calling the identity
step without an ``if __name__ == "__main__"`` guard would run itself once per worker), and
whose forked children would copy a process running DuckDB's threads. The function must be
importable (a module function or a partial of one): it is pickled by reference.
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    function, rows = pickle.load(sys.stdin.buffer)
    pickle.dump([function(*row) for row in rows], sys.stdout.buffer, pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main()

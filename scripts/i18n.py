"""Update the message catalogues after a text changed: ``python scripts/i18n.py [domain ...]`` (all by default).

New texts arrive empty in every language but German; fill them in ``hub/i18n/locale/<lang>/LC_MESSAGES/``.
``python scripts/i18n.py --check`` lists what keeps the catalogues from being complete (the tests do the same).
"""

from __future__ import annotations

import sys

from hub.i18n import domains
from hub.i18n.extract import check, update


def main(argv: list[str]) -> int:
    checking = "--check" in argv
    chosen = [a for a in argv if not a.startswith("--")] or list(domains.DOMAINS)
    problems = []
    for domain in chosen:
        if checking:
            problems += check(domain)
        else:
            for path in update(domain):
                print(path)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""End-to-end figures of Enclave between real processes, with references, in one run.

    python bench/e2e.py [--quick] [--out bench/results/e2e.json] [--profile cprofile|py-spy]

The run lives in bench/endtoend/ (its package docstring says what each case measures
and which room does what); this file is its entry point.
"""

import sys

from endtoend.run import main

if __name__ == "__main__":
    sys.exit(main())

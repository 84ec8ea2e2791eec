import sys

from insightos_utils.cli import main

sys.exit(main())

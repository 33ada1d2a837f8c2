import sys

from ppsim.cli import main

sys.exit(main())

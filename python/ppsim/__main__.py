import sys

from ppsim.cli import main

if __name__ == "__main__":  # not when a worker process (multiprocessing, Dask) imports it
    sys.exit(main())

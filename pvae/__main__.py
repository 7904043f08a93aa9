import sys

from pvae.cli import main

sys.exit(main())

import sys

from resilience.run import main

sys.exit(main())

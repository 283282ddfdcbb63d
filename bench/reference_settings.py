"""The benchmark's web server settings: the product's, plus the reference view (``bench.reference_api``)."""

from velocity.settings import *  # noqa: F403  (the product's settings; only the URLconf differs)

ROOT_URLCONF = "bench.reference_api"

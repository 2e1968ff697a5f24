"""Suite-wide settings: tests write only to temporary directories, never into the checkout."""

import tempfile

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps examples and cached constants under a home directory (default: .hypothesis/
# in the checkout): give it a throwaway one, and keep no example database at all.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="egresswatch-hypothesis-"))
settings.register_profile("egresswatch", database=None)
settings.load_profile("egresswatch")

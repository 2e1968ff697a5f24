"""Suite-wide settings: tests write only to temporary directories, never into the checkout."""

from hypothesis import settings

# No example database in the repository (.hypothesis/): failing examples are printed instead.
settings.register_profile("egresswatch", database=None)
settings.load_profile("egresswatch")

"""servo-agg: many adjust drivers presented to servo as one.

Kept free of imports so that `adjust --info` stays instant.
"""

__version__ = "0.2.0"
PRODUCT = "servo-agg"

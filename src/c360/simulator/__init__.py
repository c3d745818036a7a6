"""The ShopSmart simulator: a seeded world of customers feeding the four sources, plus truth.

``generate(settings)`` writes the orders database, the Segment clickstream, the Zendesk webhook
events and the Mailchimp files where ``settings.sources`` points, and the ground truth to
``settings.simulator.truth_dir``. See docs/simulator.md.
"""

from __future__ import annotations

from c360.simulator.params import WorldParams
from c360.simulator.run import GenerateSummary, generate
from c360.simulator.writers.shop_db import TargetNotEmptyError

__all__ = ["GenerateSummary", "TargetNotEmptyError", "WorldParams", "generate"]

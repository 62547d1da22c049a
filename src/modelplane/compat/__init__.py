"""Compatibility: other servers' Python APIs over modelplane's, so code written for them runs after changing only its
imports (`from modelplane.compat import kserve`)."""

"""safeload: load scikit-learn model files without letting them run code.

Public API: :func:`load`, :func:`loads`, :class:`Policy`, :class:`Limits` and the errors in
:mod:`safeload.errors`.
"""

from .api import load, loads
from .errors import (
    ForbiddenOperationError,
    FormatError,
    LegacyFormatError,
    LimitExceededError,
    PolicyError,
    SafeloadError,
    UntrustedTypesError,
    ValidationError,
)
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy
from .report import ScanReport
from .scan import get_untrusted_types, scan

__version__ = "0.1.0"

# Parse the reviewed default policy once, at import (about 1.5 ms), not in the first load.
Policy.default()

__all__ = [
    "load",
    "loads",
    "Policy",
    "Limits",
    "DEFAULT_LIMITS",
    "SafeloadError",
    "FormatError",
    "LegacyFormatError",
    "UntrustedTypesError",
    "ForbiddenOperationError",
    "LimitExceededError",
    "ValidationError",
    "PolicyError",
    "scan",
    "get_untrusted_types",
    "ScanReport",
]

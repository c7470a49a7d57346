"""safeload: load scikit-learn model files without letting them run code.

Public API: :func:`load`, :func:`loads`, :class:`Policy`, :class:`Limits` and the errors in
:mod:`safeload.errors`.
"""

from .api import load, loads
from .convert import ConversionReport, convert
from .dump import dump, dumps
from .errors import (
    ForbiddenOperationError,
    FormatError,
    IntegrityError,
    LegacyFormatError,
    LimitExceededError,
    MigrationError,
    PolicyError,
    SafeloadError,
    UnmigratedLegacyError,
    UntrustedTypesError,
    ValidationError,
    VersionMismatchWarning,
)
from .inspection import InspectReport, inspect
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy
from .report import ScanReport
from .scan import get_untrusted_types, scan
from .verify import VerificationReport, verify

__version__ = "0.2.0"

# Parse the reviewed default policy once, at import (about 1.5 ms), not in the first load;
# likewise register the migration rules (about 20 ms of module imports).
Policy.default()
from . import migrate as _migrate  # noqa: E402,F401

__all__ = [
    "load",
    "loads",
    "dump",
    "dumps",
    "IntegrityError",
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
    "MigrationError",
    "UnmigratedLegacyError",
    "VersionMismatchWarning",
    "scan",
    "get_untrusted_types",
    "ScanReport",
    "inspect",
    "InspectReport",
    "verify",
    "VerificationReport",
    "convert",
    "ConversionReport",
]

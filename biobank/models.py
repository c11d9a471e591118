"""Import every domain's models, so the metadata knows every table."""

from biobank.auth import models as auth_models  # noqa: F401
from biobank.consent import models as consent_models  # noqa: F401
from biobank.custody import models as custody_models  # noqa: F401
from biobank.labels import models as label_models  # noqa: F401
from biobank.patients import models as patient_models  # noqa: F401
from biobank.reference import models as reference_models  # noqa: F401
from biobank.reports import models as report_models  # noqa: F401
from biobank.requests import models as request_models  # noqa: F401
from biobank.samples import models as sample_models  # noqa: F401
from biobank.storage import models as storage_models  # noqa: F401

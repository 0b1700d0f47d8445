"""The shipped migrations (core and plugin chains) build exactly the schema the models
describe."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import crm.plugins.analysis.models
import crm.plugins.campaigns.models
import crm.plugins.coordination.models
import crm.plugins.profitability.models
import crm.plugins.satisfaction.models
import crm.plugins.service.models  # noqa: F401
from crm.core.models import Base


def test_models_and_migrations_agree(app):
    with app.engine.connect() as connection:
        # Each plugin chain's own version table is alembic's, not the models'.
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, type_, _parent: (
                    not (name or "").startswith("alembic_version")
                )
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []

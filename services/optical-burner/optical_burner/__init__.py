"""The optical-burner service: logical volumes burned as IHE PDI CD-R / DVD-R / BD-R media.

Importing the package registers the optical facts' CloudEvents type names.
"""

from optical_burner.events import register_types

register_types()

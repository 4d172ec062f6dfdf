"""The optical-burner service: logical volumes burned as IHE PDI CD-R / DVD-R / BD-R media."""

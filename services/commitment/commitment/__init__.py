"""Storage commitment (Push Model) SCP and SCU, each request a job in the jobs engine."""

"""catalogue: the journal (system of record), the projections and the query API.

The catalogue consumes every fact on the instances, studies, jobs and job-commands topics;
their type names are registered in ``dicomvault.events``.
"""

"""The dicomvault operator: Exporter custom resources reconciled into stow-exporter Deployments."""

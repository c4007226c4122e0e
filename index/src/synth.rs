//! Synthetic FHIR R4 bundles (being built).

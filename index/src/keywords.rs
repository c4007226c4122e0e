//! FHIR R4 resources to search terms. (Being written.)

//! redb storage (filled in by the storage work).

//! In-memory storage (filled in by the storage work).

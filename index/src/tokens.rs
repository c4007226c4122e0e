//! A hospital's token service (being built).

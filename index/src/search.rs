//! A node's side of a search (being built).

//! The researcher query language. (Being written.)

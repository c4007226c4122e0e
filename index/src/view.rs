//! The tantivy index as a view of committed blocks. (Being written.)

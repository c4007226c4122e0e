//! The writer side of the index: keys, counters and labels. (Being written.)

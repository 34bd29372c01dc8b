//! SQLite implementation. (Being written.)

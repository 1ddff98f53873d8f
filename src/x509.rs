//! X.509 insight (being written).

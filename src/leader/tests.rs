//! Tests of the Lease state machine against the fake Lease API.

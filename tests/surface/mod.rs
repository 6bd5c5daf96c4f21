//! Integration tests: surface.

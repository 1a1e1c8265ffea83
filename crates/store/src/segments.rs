//! Segments (rules and conditions) and segment overrides.

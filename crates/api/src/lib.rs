//! Flagstone admin API.

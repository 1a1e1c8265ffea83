//! Identities, their traits and identity overrides.

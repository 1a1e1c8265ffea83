//! Features, their multivariate options and their per-environment states.

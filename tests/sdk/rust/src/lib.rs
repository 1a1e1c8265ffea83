//! Nothing here: the SDK checks are in tests/.

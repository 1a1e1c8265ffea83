//! Building an environment document from the store, streamed.

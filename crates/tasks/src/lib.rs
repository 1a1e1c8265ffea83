//! Flagstone's task processor: workers that claim publish jobs, build and publish environment
//! documents, and keep every environment converged (see DESIGN.md §2-§5).

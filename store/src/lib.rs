//! Mayfly's embedded store.

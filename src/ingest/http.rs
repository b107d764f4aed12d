//! HTTP intake (see api::events).

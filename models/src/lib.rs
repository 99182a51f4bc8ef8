//! Encoders and signal heads. Empty until the encoder issue lands; see DESIGN.md §6.

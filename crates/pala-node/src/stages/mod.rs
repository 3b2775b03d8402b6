//! The node's stages, one module each.

pub mod storage;

//! placeholder while the collector compiles

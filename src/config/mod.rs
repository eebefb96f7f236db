//! Pipeline files: read, interpolate `${VAR}`, deserialise (unknown keys rejected), then
//! validate into a [`Pipeline`]. Errors name the file, line, column and field path.

pub mod model;

pub use model::*;

//! Datum's pure core: the domain model, the document schema, the reducers and the text tools.
//!
//! Nothing in this crate opens a file or a socket, reads the clock or draws randomness: time and bytes are
//! passed in, values come out. That is what lets the edge, the hub and the tests share it and run it
//! deterministically. A test (`tests/layering.rs`) fails if a dependency that does I/O sneaks in.

pub mod audit;
pub mod central;
pub mod change;
pub mod csv_import;
pub mod dbfile;
pub mod diff;
pub mod document;
pub mod drift;
pub mod evidence;
pub mod identity;
pub mod ids;
pub mod model;
pub mod normalize;
pub mod person;
pub mod policy;
pub mod rollout;
pub mod sync;
pub mod template;
pub mod text;
pub mod view;
pub mod waiver;

pub use ids::{AssetName, ChangeId, DocId, IdError, SlotName};

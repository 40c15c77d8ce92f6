//! Configuration (being written by the lead).

pub mod table;

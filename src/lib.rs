//! loreweave: a terminal workbench for retrieval-augmented chat and scenario
//! generation with a live view of every request's lifecycle. The binary is a
//! thin shell over this library, so tests and benches drive the same code.

pub mod app;
pub mod backends;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod headless;
pub mod kb;
pub mod keymap;
pub mod logging;
pub mod persist;
pub mod prompts;
pub mod runtime;
pub mod sanitize;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod tui;
pub mod ui;

//! afterScript (SPEC §4.6): the sandbox that runs in a child process, the runner that
//! spawns and watches it, and signed webhook delivery of its notifications.

pub mod runner;
pub mod sandbox;
pub mod webhook;

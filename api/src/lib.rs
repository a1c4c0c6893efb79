//! Parlo's server: configuration, keys, the domain model, storage, HTTP and the command line.

pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod dist;
pub mod error;
pub mod http;
pub mod keyring;
pub mod knowledge;
pub mod lifecycle;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod mistral;
pub mod model;
pub mod ratelimit;
pub mod site;
pub mod state;
pub mod storage;
pub mod trust;
pub mod widget;

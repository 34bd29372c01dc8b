//! The one integration-test binary of the server: real HTTP on `127.0.0.1:0`, a fresh
//! database per test. Grouped by surface, one file per group under `tests/api/`.

#![allow(clippy::unwrap_used)]

mod common;

#[path = "api/envelope.rs"]
mod envelope;

#[path = "api/objects.rs"]
mod objects;

#[path = "api/cloud.rs"]
mod cloud;

#[path = "api/acl.rs"]
mod acl;

#[path = "api/queries.rs"]
mod queries;

#[path = "api/aggregate.rs"]
mod aggregate;

#[path = "api/batch.rs"]
mod batch;

#[path = "api/schemas.rs"]
mod schemas;

#[path = "api/limits.rs"]
mod limits;

#[path = "api/bad_input.rs"]
mod bad_input;

#[path = "api/sessions.rs"]
mod sessions;

#[path = "api/lifecycle.rs"]
mod lifecycle;

#[path = "api/cli.rs"]
mod cli;

#[path = "api/template.rs"]
mod template;

#[path = "api/roles.rs"]
mod roles;

#[path = "api/account_mail.rs"]
mod account_mail;

#[path = "api/users.rs"]
mod users;

#[path = "api/matrix.rs"]
mod matrix;

#[path = "api/files.rs"]
mod files;

#[path = "api/live.rs"]
mod live;

#[path = "api/live_access.rs"]
mod live_access;

#[path = "api/providers.rs"]
mod providers;

#[path = "api/instances.rs"]
mod instances;

#[path = "api/generation.rs"]
mod generation;

#[path = "api/transfer.rs"]
mod transfer;

#[path = "api/context.rs"]
mod context;

#[path = "api/chat_rules.rs"]
mod chat_rules;

#[path = "api/directory.rs"]
mod directory;

#[path = "api/graphql.rs"]
mod graphql;

#[path = "api/graphql_batching.rs"]
mod graphql_batching;

#[path = "api/graphql_live.rs"]
mod graphql_live;

#[path = "api/graphql_matrix.rs"]
mod graphql_matrix;

#[path = "api/web.rs"]
mod web;

#[path = "api/metrics.rs"]
mod metrics;

#[path = "api/console.rs"]
mod console;

#[path = "api/connections.rs"]
mod connections;

#[path = "api/parse_compat.rs"]
mod parse_compat;
#[path = "api/tools.rs"]
mod tools;

//! The chat template's access-control matrix (`matrix.rs`) run again through GraphQL: every
//! cell — each class × operation × kind of caller — must come out as it does over REST.
//!
//! Reads are the get and find queries (`count` for counts); writes the create, update and
//! delete mutations; `include` is a pointer field selected with a field of its own; the
//! subquery is a pointer `have` with two constraints (one by id alone is a plain pointer
//! comparison, see `graphql/input.rs`).

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::graphql::gql_with;
use super::matrix::{Expect, MATRIX, Op, Target, World};
use crate::common::*;
use parlor_server::graphql::classes::ClassNames;

/// A REST body → the fields input of the same write.
fn fields_input(body: &Value) -> Value {
    let mut fields = Map::new();
    for (key, value) in body.as_object().into_iter().flatten() {
        let converted = match value.get("__type").and_then(Value::as_str) {
            Some("Pointer") => json!({"link": value["objectId"]}),
            _ => value.clone(),
        };
        fields.insert(key.clone(), converted);
    }
    Value::Object(fields)
}

/// Reads a success's data as the table's outcome.
type Reader = Box<dyn Fn(&Value) -> Option<Expect>>;

/// What a GraphQL reply says, in the table's words (`shape` is what a success should hold).
fn outcome(reply: &Reply, read: impl Fn(&Value) -> Option<Expect>) -> Expect {
    if reply.status != StatusCode::OK {
        return match reply.body["code"].as_i64() {
            Some(code) => Expect::Deny(code),
            None => Expect::Other(reply.status.as_u16()),
        };
    }
    if let Some(error) = reply.body["errors"].get(0) {
        return match error["extensions"]["code"].as_i64() {
            Some(code) => Expect::Deny(code),
            None => Expect::Other(200),
        };
    }
    read(&reply.body["data"]).unwrap_or(Expect::Other(200))
}

async fn run(world: &World, target: Target, op: Op, caller: Caller) -> (Expect, String) {
    let class_name = World::class_of(target);
    let names = ClassNames::of(class_name);
    let token = world.member(caller).map(|member| member.token.clone());
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(token) = &token {
        headers.push(("x-parse-session-token", token));
    }
    if caller == Caller::Master {
        headers.push(("x-parse-master-key", MASTER_KEY));
    }
    let id = world.target_id(target, caller);
    let plural = names.plural.clone().unwrap_or_default();
    let single = names.single.clone();
    let type_name = names.type_name.clone();
    let (reply, read): (Reply, Reader) = match op {
        Op::Get => {
            let query = format!("query($id: ID!) {{ {single}(id: $id) {{ objectId }} }}");
            let reply = gql_with(&world.server, &headers, &query, json!({"id": id})).await;
            let key = single.clone();
            (
                reply,
                Box::new(move |data| data[&key]["objectId"].as_str().map(|_| Expect::Ok)),
            )
        }
        Op::Find | Op::Count => {
            let selection = if op == Op::Find {
                "edges { node { objectId } }"
            } else {
                "count"
            };
            let query = format!(
                "query($id: ID!) {{ {plural}(where: {{objectId: {{in: [$id]}}}}) {{ {selection} }} }}"
            );
            let reply = gql_with(&world.server, &headers, &query, json!({"id": id})).await;
            let key = plural.clone();
            let read: Reader = if op == Op::Find {
                Box::new(move |data| {
                    data[&key]["edges"]
                        .as_array()
                        .map(|edges| Expect::Rows(edges.len()))
                })
            } else {
                Box::new(move |data| data[&key]["count"].as_u64().map(Expect::Count))
            };
            (reply, read)
        }
        Op::Create => {
            let mut body = world.create_body(target);
            if target == Target::Context {
                // As in the REST matrix: a fresh session whose Context the master removed.
                let context = world.fresh(Target::Context).await;
                let stored = world.server.get("Context", &context).await;
                world
                    .server
                    .master(
                        reqwest::Method::DELETE,
                        &format!("/classes/Context/{context}"),
                        None,
                    )
                    .await;
                body = json!({"session": stored["session"], "sessionId": stored["sessionId"], "data": {"topic": "trip"}});
            }
            let query = format!(
                "mutation($f: Create{type_name}FieldsInput) {{ create{type_name}(input: {{fields: $f}}) {{ {single} {{ objectId }} }} }}"
            );
            let reply = gql_with(
                &world.server,
                &headers,
                &query,
                json!({"f": fields_input(&body)}),
            )
            .await;
            let key = format!("create{type_name}");
            (
                reply,
                Box::new(move |data| data[&key][&single]["objectId"].as_str().map(|_| Expect::Ok)),
            )
        }
        Op::Update | Op::Delete => {
            let id = match target {
                Target::OwnUser => id,
                _ => world.fresh(target).await,
            };
            let (query, variables, key) = if op == Op::Update {
                (
                    format!(
                        "mutation($id: ID!, $f: Update{type_name}FieldsInput) {{ update{type_name}(input: {{id: $id, fields: $f}}) {{ {single} {{ objectId }} }} }}"
                    ),
                    json!({"id": id, "f": fields_input(&World::update_body(target))}),
                    format!("update{type_name}"),
                )
            } else {
                (
                    format!(
                        "mutation($id: ID!) {{ delete{type_name}(input: {{id: $id}}) {{ {single} {{ objectId }} }} }}"
                    ),
                    json!({"id": id}),
                    format!("delete{type_name}"),
                )
            };
            let reply = gql_with(&world.server, &headers, &query, variables).await;
            (
                reply,
                Box::new(move |data| data[&key][&single]["objectId"].as_str().map(|_| Expect::Ok)),
            )
        }
        Op::Include(outer, field) => {
            let outer_id = if outer == "Probe" {
                &world.probe
            } else {
                &world.message
            };
            let outer_names = ClassNames::of(outer);
            let outer_plural = outer_names.plural.unwrap_or_default();
            let query = format!(
                "query($id: ID!) {{ {outer_plural}(where: {{objectId: {{in: [$id]}}}}) {{ edges {{ node {{ {field} {{ objectId createdAt }} }} }} }} }}"
            );
            let reply = gql_with(&world.server, &headers, &query, json!({"id": outer_id})).await;
            let key = outer_plural.clone();
            (
                reply,
                Box::new(move |data| {
                    let edges = data[&key]["edges"].as_array()?;
                    match edges.as_slice() {
                        [edge] => Some(Expect::Incl(edge["node"][field].is_object())),
                        _ => Some(Expect::Rows(edges.len())),
                    }
                }),
            )
        }
        Op::Subquery(outer, field) => {
            let outer_names = ClassNames::of(outer);
            let outer_plural = outer_names.plural.unwrap_or_default();
            let query = format!(
                "query($id: ID!) {{ {outer_plural}(where: {{{field}: {{have: {{objectId: {{equalTo: $id}}, createdAt: {{exists: true}}}}}}}}) {{ edges {{ node {{ objectId }} }} }} }}"
            );
            let reply = gql_with(&world.server, &headers, &query, json!({"id": id})).await;
            let key = outer_plural.clone();
            (
                reply,
                Box::new(move |data| {
                    data[&key]["edges"]
                        .as_array()
                        .map(|edges| Expect::Rows(edges.len()))
                }),
            )
        }
    };
    (outcome(&reply, read), reply.text)
}

/// Every cell of the REST matrix, through GraphQL; all mismatches are reported together.
#[tokio::test]
async fn the_access_control_matrix_holds_through_graphql() {
    let world = World::new().await;
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for (target, op, expectations) in MATRIX {
        for (caller, expected) in CALLERS.iter().zip(expectations) {
            if *expected == Expect::Skip {
                continue;
            }
            cells += 1;
            let (actual, body) = run(&world, *target, *op, *caller).await;
            if actual != *expected {
                let body: String = body.chars().take(200).collect();
                mismatches.push(format!(
                    "{target:?} {op:?} as {caller:?}: REST gives {expected:?}, GraphQL {actual:?} ({body})"
                ));
            }
        }
    }
    assert!(cells > 250, "only {cells} cells ran");
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ from REST:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

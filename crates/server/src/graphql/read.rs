//! Reads: a selection set → the `keys` and `include` of one find, so a page of objects and
//! every pointer it shows (at any depth) come from one store query per class and level —
//! the read path's own batched `include` — rather than one query per object.

use async_graphql::SelectionField;
use async_graphql::dynamic::{ResolverContext, ValueAccessor};
use parlor_core::Code;
use parlor_core::schema::{ClassSchema, FieldType};
use serde_json::{Map, Value};

use super::input::where_to_parse;
use super::names;
use super::values::{Caller, Connection, Edge, ParseObject, failure};
use crate::operation::{FindRequest, GetRequest, OpError, Operations, read::DEFAULT_LIMIT};

/// What to fetch for a selection of an object type.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub keys: Vec<String>,
    pub include: Vec<String>,
}

/// Fields every object carries whatever `keys` says.
fn always_present(name: &str) -> bool {
    matches!(
        name,
        "__typename" | "id" | "objectId" | "createdAt" | "updatedAt" | "ACL"
    )
}

/// Whether a selection of a pointed object needs more than the pointer itself holds.
fn needs_object<'a>(selection: impl Iterator<Item = SelectionField<'a>>) -> bool {
    let mut fields = selection.peekable();
    fields.peek().is_some()
        && fields.any(|field| !matches!(field.name(), "__typename" | "id" | "objectId"))
}

impl Plan {
    /// The plan for `fields`, selected on objects of `schema`.
    pub fn of<'a>(
        operations: &Operations,
        schema: &ClassSchema,
        fields: impl Iterator<Item = SelectionField<'a>>,
    ) -> Plan {
        let mut plan = Plan::default();
        plan.add(operations, schema, fields, "", 0);
        plan.keys.sort();
        plan.keys.dedup();
        plan.include.sort();
        plan.include.dedup();
        plan
    }

    fn add<'a>(
        &mut self,
        operations: &Operations,
        schema: &ClassSchema,
        fields: impl Iterator<Item = SelectionField<'a>>,
        prefix: &str,
        depth: usize,
    ) {
        // Deeper levels than the query depth limit allows never get here; this only stops a
        // schema whose pointers form a cycle from recursing without end.
        if depth > 32 {
            return;
        }
        for field in fields {
            let name = field.name();
            if always_present(name) {
                continue;
            }
            let Some(field_type) = schema.field_type(name) else {
                continue;
            };
            let path = format!("{prefix}{name}");
            match field_type {
                FieldType::Relation(_) => {
                    // Resolved by its own find; the parent needs only its objectId.
                }
                FieldType::Pointer(target) => {
                    self.keys.push(path.clone());
                    if needs_object(field.selection_set()) {
                        self.include.push(path.clone());
                        if let Some(target_schema) = operations.schemas.get(target) {
                            self.add(
                                operations,
                                &target_schema,
                                field.selection_set(),
                                &format!("{path}."),
                                depth + 1,
                            );
                        }
                    }
                }
                FieldType::Array => {
                    self.keys.push(path.clone());
                    // Pointers in the array are shown as objects when a fragment on their class
                    // is selected: include them whole.
                    if field
                        .selection_set()
                        .any(|item| !matches!(item.name(), "__typename" | "value"))
                    {
                        self.include.push(path);
                    }
                }
                _ => self.keys.push(path),
            }
        }
    }

    /// `keys` for the read path: `None` (every field) when nothing but the always-present
    /// fields was asked.
    pub fn keys(&self) -> Option<Vec<String>> {
        (!self.keys.is_empty()).then(|| self.keys.clone())
    }
}

/// The node selections under `edges { node { … } }` of a connection field.
pub fn node_selection<'a>(connection: SelectionField<'a>) -> Vec<SelectionField<'a>> {
    connection
        .selection_set()
        .filter(|field| field.name() == "edges")
        .flat_map(|edges| {
            edges
                .selection_set()
                .filter(|field| field.name() == "node")
                .collect::<Vec<_>>()
        })
        .flat_map(|node| node.selection_set().collect::<Vec<_>>())
        .collect()
}

/// Which parts of a connection the query selected.
struct Wanted {
    count: bool,
    edges: bool,
    has_next_page: bool,
}

fn wanted(connection: SelectionField<'_>) -> Wanted {
    let mut wanted = Wanted {
        count: false,
        edges: false,
        has_next_page: false,
    };
    for field in connection.selection_set() {
        match field.name() {
            "count" => wanted.count = true,
            "edges" => wanted.edges = true,
            "pageInfo" => {
                wanted.edges = true;
                wanted.has_next_page |= field
                    .selection_set()
                    .any(|info| info.name() == "hasNextPage");
            }
            _ => {}
        }
    }
    wanted
}

/// `skip`, `first`, `after`, `last`, `before` → the offset and limit of the find, and
/// whether the total count is needed to place `last`.
#[derive(Debug, Default, PartialEq)]
pub struct Window {
    pub skip: u64,
    pub limit: Option<u64>,
    pub from_end: Option<u64>,
}

fn invalid_query(message: &str) -> async_graphql::Error {
    failure(OpError::parse(Code::InvalidQuery, message.to_owned()))
}

fn int_arg(
    args: &async_graphql::dynamic::ObjectAccessor<'_>,
    name: &str,
) -> async_graphql::Result<Option<i64>> {
    match args.get(name) {
        Some(value) if !value.is_null() => Ok(Some(value.i64()?)),
        _ => Ok(None),
    }
}

fn cursor_arg(
    args: &async_graphql::dynamic::ObjectAccessor<'_>,
    name: &str,
    message: &str,
) -> async_graphql::Result<Option<u64>> {
    match args.get(name) {
        Some(value) if !value.is_null() => names::cursor_offset(value.string()?)
            .map(Some)
            .ok_or_else(|| invalid_query(message)),
        _ => Ok(None),
    }
}

/// Parse Server's arithmetic of relay paging arguments over skip/limit.
pub fn window(args: &async_graphql::dynamic::ObjectAccessor<'_>) -> async_graphql::Result<Window> {
    let mut window = Window::default();
    if let Some(skip) = int_arg(args, "skip")? {
        window.skip =
            u64::try_from(skip).map_err(|_| invalid_query("Skip should be a positive number"))?;
    }
    if let Some(after) = cursor_arg(args, "after", "After is not a valid cursor")? {
        window.skip = window.skip.saturating_add(after).saturating_add(1);
    }
    if let Some(first) = int_arg(args, "first")? {
        window.limit = Some(
            u64::try_from(first).map_err(|_| invalid_query("First should be a positive number"))?,
        );
    }
    if let Some(before) = cursor_arg(args, "before", "Before is not a valid cursor")? {
        if window.skip >= before {
            window.limit = Some(0);
        } else {
            let room = before - window.skip;
            window.limit = Some(window.limit.map_or(room, |limit| limit.min(room)));
        }
    }
    if let Some(last) = int_arg(args, "last")? {
        let last =
            u64::try_from(last).map_err(|_| invalid_query("Last should be a positive number"))?;
        match window.limit {
            Some(limit) if last < limit => {
                window.skip += limit - last;
                window.limit = Some(last);
            }
            Some(_) => {}
            None if last == 0 => window.limit = Some(0),
            None => {
                window.limit = Some(last);
                window.from_end = Some(last);
            }
        }
    }
    Ok(window)
}

/// The `order` argument's enum values → Parse's `order` (`createdAt_DESC` → `-createdAt`).
fn order(
    args: &async_graphql::dynamic::ObjectAccessor<'_>,
) -> async_graphql::Result<Option<String>> {
    let Some(list) = args.get("order").filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let mut keys = Vec::new();
    for item in list.list()?.iter() {
        let name = item.enum_name()?;
        let (field, descending) = match name.rsplit_once('_') {
            Some((field, "DESC")) => (field, true),
            Some((field, _)) => (field, false),
            None => (name, false),
        };
        let field = if field == "id" { "objectId" } else { field };
        keys.push(if descending {
            format!("-{field}")
        } else {
            field.to_owned()
        });
    }
    Ok((!keys.is_empty()).then(|| keys.join(",")))
}

/// The `where` argument as Parse JSON.
pub fn where_arg(
    operations: &Operations,
    class_name: &str,
    argument: Option<ValueAccessor<'_>>,
) -> Value {
    match argument {
        Some(value) if !value.is_null() => where_to_parse(
            &operations.schemas,
            class_name,
            &super::values::to_json(value.as_value()),
        ),
        _ => Value::Object(Map::new()),
    }
}

/// A find for a connection field (a class's find query, or a relation field).
pub async fn find_connection(
    ctx: &ResolverContext<'_>,
    class_name: &str,
    where_json: Value,
) -> async_graphql::Result<Connection> {
    let operations = ctx.data::<Operations>()?;
    let caller = ctx.data::<Caller>()?;
    let schema = operations.schemas.get(class_name);
    let selection = ctx.field();
    let wanted = wanted(selection);
    let window = window(&ctx.args)?;
    let plan = match &schema {
        Some(schema) => Plan::of(operations, schema, node_selection(selection).into_iter()),
        None => Plan::default(),
    };
    let order = order(&ctx.args)?;
    let mut skip = window.skip;
    let mut count = None;
    if let Some(last) = window.from_end {
        // `last` without `first`: the total places the window at the end.
        let total = count_objects(operations, &caller.auth, class_name, &where_json).await?;
        skip = skip.max(total.saturating_sub(last));
        count = Some(total);
    }
    let limit = window.limit.unwrap_or(DEFAULT_LIMIT);
    let limit = operations
        .config
        .max_limit
        .map_or(limit, |max| limit.min(max));
    // One more object than the page tells whether a next page exists, without counting.
    let peek = wanted.has_next_page && !wanted.count && count.is_none();
    let fetch = if wanted.edges {
        limit.saturating_add(u64::from(peek))
    } else {
        0
    };
    let request = FindRequest {
        where_json,
        order,
        skip,
        limit: Some(fetch),
        count: wanted.count && count.is_none(),
        keys: plan.keys(),
        include: plan.include,
        ..FindRequest::default()
    };
    let response = operations
        .find(&caller.auth, class_name, request)
        .await
        .map_err(failure)?;
    let mut nodes: Vec<Map<String, Value>> = response
        .results
        .into_iter()
        .filter_map(|result| match result {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .collect();
    let count = count.or(response.count);
    let has_next_page = match count {
        Some(total) => total > skip + nodes.len().min(limit as usize) as u64,
        None => nodes.len() as u64 > limit,
    };
    nodes.truncate(limit.min(usize::MAX as u64) as usize);
    let edges = nodes
        .into_iter()
        .enumerate()
        .map(|(index, json)| Edge {
            cursor: names::cursor(skip + index as u64),
            node: ParseObject {
                class_name: class_name.to_owned(),
                json,
            },
        })
        .collect();
    Ok(Connection {
        edges,
        skip,
        count,
        has_next_page,
    })
}

async fn count_objects(
    operations: &Operations,
    auth: &crate::operation::Auth,
    class_name: &str,
    where_json: &Value,
) -> async_graphql::Result<u64> {
    let request = FindRequest {
        where_json: where_json.clone(),
        limit: Some(0),
        count: true,
        ..FindRequest::default()
    };
    let response = operations
        .find(auth, class_name, request)
        .await
        .map_err(failure)?;
    Ok(response.count.unwrap_or(0))
}

/// One object by id, with what `fields` (its selection) needs.
pub async fn get_object<'a>(
    operations: &Operations,
    caller: &Caller,
    class_name: &str,
    object_id: &str,
    fields: impl Iterator<Item = SelectionField<'a>>,
) -> async_graphql::Result<ParseObject> {
    let plan = match operations.schemas.get(class_name) {
        Some(schema) => Plan::of(operations, &schema, fields),
        None => Plan::default(),
    };
    get_planned(operations, caller, class_name, object_id, &plan).await
}

/// One object by id, read as `plan` says.
pub async fn get_planned(
    operations: &Operations,
    caller: &Caller,
    class_name: &str,
    object_id: &str,
    plan: &Plan,
) -> async_graphql::Result<ParseObject> {
    let request = GetRequest {
        keys: plan.keys(),
        include: plan.include.clone(),
        ..GetRequest::default()
    };
    let json = operations
        .get(&caller.auth, class_name, object_id, request)
        .await
        .map_err(failure)?;
    let json = match json {
        Value::Object(mut map) => {
            // A user's own read carries no session token through GraphQL (`viewer` has it).
            map.remove("sessionToken");
            map
        }
        _ => Map::new(),
    };
    Ok(ParseObject {
        class_name: class_name.to_owned(),
        json,
    })
}

/// Whether the selection of an object needs anything a write's answer does not hold: the
/// ids, and the fields in `answered`.
pub fn needs_read<'a>(
    mut fields: impl Iterator<Item = SelectionField<'a>>,
    answered: &[&str],
) -> bool {
    fields.any(|field| {
        !matches!(field.name(), "__typename" | "id" | "objectId")
            && !answered.contains(&field.name())
    })
}

//! Reads: find, get and count, with `include`, `keys`, `excludeKeys` and protectedFields.
//!
//! A read is one store query whose filter carries the caller's CLP pointer permissions and
//! ACL, so `count`, `skip` and `limit` only see readable rows; `include` runs one more
//! query per class and path level under the same rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parlor_core::object::Object;
use parlor_core::query::parse::parse_order;
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand, QueryContext, parse_where};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::value::as_pointer;
use parlor_core::{Code, Error};
use parlor_store::JsonRows;
use serde_json::{Map, Value};

use super::access::{
    ClassOperation, ProtectedFields, check_class_permission, read_filter, read_operation,
    refuse_internal_class,
};
use super::class_cache::ClassCache;
use super::{Auth, OpError, OpResult, Operations, user_directory};

/// The results of a find before the default limit: Parse's is 100.
pub const DEFAULT_LIMIT: u64 = 100;

/// A find, as the REST (and later GraphQL) edge hands it over.
#[derive(Debug, Clone, Default)]
pub struct FindRequest {
    /// The `where` object (`{}` when absent).
    pub where_json: Value,
    pub order: Option<String>,
    pub skip: u64,
    /// `None`: the default limit.
    pub limit: Option<u64>,
    pub count: bool,
    pub keys: Option<Vec<String>>,
    pub exclude_keys: Vec<String>,
    pub include: Vec<String>,
    pub include_all: bool,
    /// With `$relatedTo`: answer with the relation's target class (the JS SDK's `relation.query()`).
    pub redirect_class_name_for_key: Option<String>,
    /// `explain`: answer the database's plan for the find instead of its objects (master
    /// key only, as Parse Server 9 by default).
    pub explain: bool,
}

/// A get by id's options.
#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    pub keys: Option<Vec<String>>,
    pub exclude_keys: Vec<String>,
    pub include: Vec<String>,
    pub include_all: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FindResponse {
    pub results: Vec<Value>,
    pub count: Option<u64>,
    /// The class the results belong to when `redirectClassNameForKey` redirected the query.
    pub redirected_class_name: Option<String>,
}

/// A find's answer for an edge that writes it out as JSON text ([`Operations::find_text`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FindPage {
    pub results: Found,
    pub count: Option<u64>,
    pub redirected_class_name: Option<String>,
}

/// A find's objects: rendered values, or, when rendering would leave every object as the
/// store holds it, the JSON array the store wrote straight from its rows (a history page's
/// objects are then never built as values only to be serialised).
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Values(Vec<Value>),
    Text(JsonRows),
}

impl Found {
    pub fn into_values(self) -> OpResult<Vec<Value>> {
        match self {
            Found::Values(values) => Ok(values),
            Found::Text(rows) => Ok(rows.into_values()?),
        }
    }
}

/// `{"results": [...]}`, built around `results`: `json!` would copy every object of them
/// (a fifth of a 50-row history page's CPU).
pub fn results_body(results: Vec<Value>) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("results".into(), Value::Array(results));
    Value::Object(body)
}

/// Resolves subqueries (`$inQuery`, `$select`) with the caller's rights on their classes.
pub(super) struct CallerQueryContext<'a> {
    pub(super) operations: &'a Operations,
    pub(super) auth: &'a Auth,
}

impl QueryContext for CallerQueryContext<'_> {
    fn schema(&self, class_name: &str) -> Option<Arc<ClassSchema>> {
        self.operations.schemas.get(class_name)
    }

    fn restrict_subquery(&self, class_name: &str) -> Result<Filter, Error> {
        let Some(schema) = self.operations.schemas.get(class_name) else {
            return Ok(Filter::False);
        };
        let clp = check_class_permission(&schema, ClassOperation::Find, self.auth)?;
        Ok(clp.and(read_filter(self.auth)))
    }
}

/// Which pointers to expand below one level, and which keys to keep there.
#[derive(Debug, Default)]
struct IncludeTree {
    children: BTreeMap<String, IncludeTree>,
    /// Keys selected inside this level by dotted `keys` (`author.name`).
    keys: Option<BTreeSet<String>>,
    /// `*`: every pointer field of this level.
    all: bool,
}

impl IncludeTree {
    /// Nothing to expand.
    fn is_empty(&self) -> bool {
        self.children.is_empty() && !self.all
    }

    fn build(include: &[String], include_all: bool, keys: Option<&[String]>) -> IncludeTree {
        let mut tree = IncludeTree {
            all: include_all,
            ..IncludeTree::default()
        };
        for path in include {
            let mut node = &mut tree;
            for segment in path.split('.').filter(|segment| !segment.is_empty()) {
                if segment == "*" {
                    node.all = true;
                    break;
                }
                node = node.children.entry(segment.to_owned()).or_default();
            }
        }
        for key in keys.unwrap_or_default() {
            let segments: Vec<&str> = key.split('.').collect();
            if segments.len() < 2 {
                continue;
            }
            let mut node = &mut tree;
            for segment in &segments[..segments.len() - 1] {
                node = node.children.entry((*segment).to_owned()).or_default();
            }
            if let Some(last) = segments.last() {
                node.keys
                    .get_or_insert_with(BTreeSet::new)
                    .insert((*last).to_owned());
            }
        }
        tree
    }
}

impl Operations {
    /// `GET /classes/:className` (and the SDK's `query.find()`).
    pub async fn find(
        &self,
        auth: &Auth,
        class_name: &str,
        request: FindRequest,
    ) -> OpResult<FindResponse> {
        let page = self.find_page(auth, class_name, request, false).await?;
        Ok(FindResponse {
            results: page.results.into_values()?,
            count: page.count,
            redirected_class_name: page.redirected_class_name,
        })
    }

    /// [`Operations::find`] for an edge that writes the answer as JSON text (REST): the
    /// objects come as the store's text when rendering would not change them.
    pub async fn find_text(
        &self,
        auth: &Auth,
        class_name: &str,
        request: FindRequest,
    ) -> OpResult<FindPage> {
        self.find_page(auth, class_name, request, true).await
    }

    async fn find_page(
        &self,
        auth: &Auth,
        class_name: &str,
        mut request: FindRequest,
        text_wanted: bool,
    ) -> OpResult<FindPage> {
        refuse_internal_class(class_name, ClassOperation::Find)?;
        if request.explain && !auth.master {
            return Err(super::aggregate::explain_refused());
        }
        self.before_find(auth, class_name, &mut request, false)
            .await?;
        let schema = match &request.redirect_class_name_for_key {
            Some(key) => self.redirected_schema(class_name, key)?,
            None => self.schemas.get(class_name),
        };
        let Some(schema) = schema else {
            // Parse answers an empty result for a class that does not exist yet, once the
            // where has passed its checks (an invalid key or `$options` is still an error).
            let context = CallerQueryContext {
                operations: self,
                auth,
            };
            parse_where(&request.where_json, &ClassSchema::new(class_name), &context)?;
            return Ok(FindPage {
                results: Found::Values(Vec::new()),
                count: request.count.then_some(0),
                redirected_class_name: None,
            });
        };
        let mut limit = match (request.limit, self.config.max_limit) {
            (None, max) => DEFAULT_LIMIT.min(max.unwrap_or(u64::MAX)),
            (Some(limit), Some(max)) => limit.min(max),
            (Some(limit), None) => limit,
        };
        let directory = user_directory::applies(self, &schema, auth)
            && user_directory::searchable(&request.where_json, request.order.as_deref());
        if directory {
            self.admit_directory_search(auth)?;
            limit = limit.min(user_directory::MAX_PAGE);
        }
        let mut clp_filter = Filter::True;
        if request.count {
            clp_filter = check_class_permission(&schema, ClassOperation::Count, auth)?;
        }
        if limit > 0 || !request.count {
            let operation = read_operation(&request.where_json, false);
            clp_filter = clp_filter.and(check_class_permission(&schema, operation, auth)?);
        }
        let protected = ProtectedFields::for_reader(&schema, auth);
        if let Some(protected) = &protected {
            let hidden = protected.always_hidden();
            refuse_queries_on_hidden(&schema, &request.where_json, &hidden)?;
            // Sorting by a hidden field would leak its order: refuse it like a query on it.
            let sorted_fields = request.order.iter().flat_map(|order| order.split(','));
            for key in sorted_fields {
                let field = key
                    .trim()
                    .trim_start_matches('-')
                    .split('.')
                    .next()
                    .unwrap_or_default();
                if hidden.contains(field) {
                    return Err(OpError::parse(
                        Code::OperationForbidden,
                        format!(
                            "This user is not allowed to query {field} on class {}",
                            schema.class_name
                        ),
                    ));
                }
            }
        }
        let context = CallerQueryContext {
            operations: self,
            auth,
        };
        let filter = parse_where(&request.where_json, &schema, &context)?
            .and(clp_filter)
            .and(acl_filter(auth, directory));
        let mut order = match &request.order {
            Some(order) => parse_order(order, &schema)?,
            None => Vec::new(),
        };
        // `$nearSphere` sorts by distance unless the query gives its own order (Parse
        // Server's PostgreSQL adapter).
        if order.is_empty()
            && let Some(near) = filter.near_order()
        {
            order.push(near);
        }
        let store_keys = request.keys.as_ref().map(|keys| top_level_keys(keys));
        let score = text_score(&request, &schema)?;
        // `keys=$score` keeps the relevance, which objects carry as `score`.
        if let Some(keys) = &mut request.keys {
            for key in keys.iter_mut().filter(|key| *key == "$score") {
                *key = "score".to_owned();
            }
        }
        let text_score_asked = score.is_some();
        let query = FindQuery {
            filter,
            order,
            skip: request.skip,
            limit: Some(limit),
            keys: store_keys,
            score,
        };
        if request.explain {
            // The plan of the statement the find would run, as the database gives it
            // (PostgreSQL's `EXPLAIN (FORMAT JSON)` row, as Parse Server's PostgreSQL
            // adapter answers; SQLite's `EXPLAIN QUERY PLAN` steps in the same place).
            let plan = self.store.explain_json(&schema, &query).await?;
            return Ok(FindPage {
                results: Found::Values(vec![serde_json::json!({ "QUERY PLAN": plan })]),
                count: None,
                redirected_class_name: None,
            });
        }
        let count = if request.count {
            Some(self.store.count(&schema, &query.filter).await?)
        } else {
            None
        };
        let tree = IncludeTree::build(
            &request.include,
            request.include_all,
            request.keys.as_deref(),
        );
        let as_stored = text_wanted
            && !text_score_asked
            && request.redirect_class_name_for_key.is_none()
            && self.renders_as_stored(
                protected.as_ref(),
                &schema,
                &tree,
                &request.exclude_keys,
                directory,
            );
        if as_stored {
            let rows = if limit == 0 {
                JsonRows::default()
            } else {
                self.store.find_json(&schema, &query).await?
            };
            return Ok(FindPage {
                results: Found::Text(rows),
                count,
                redirected_class_name: None,
            });
        }
        let objects = if limit == 0 {
            Vec::new()
        } else {
            self.store.find(&schema, &query).await?
        };
        let public_only = directory_rows(directory, auth, &objects);
        let mut results = self
            .render(
                auth,
                &schema,
                objects,
                &tree,
                request.keys.as_deref(),
                &request.exclude_keys,
            )
            .await?;
        to_public_profiles(&mut results, &public_only);
        let redirected_class_name = (request.redirect_class_name_for_key.is_some()
            && schema.class_name != class_name)
            .then(|| schema.class_name.clone());
        let results = results.into_iter().map(Value::Object).collect();
        let mut results = if limit > 0 {
            self.after_find(auth, &schema.class_name, results).await?
        } else {
            results
        };
        // Each result names the class it was redirected to, as Parse Server answers: the JS
        // SDK's `first()` (and `get()`) read it from the object, not from the response.
        if let Some(redirected) = &redirected_class_name {
            for result in &mut results {
                if let Value::Object(fields) = result {
                    fields.insert("className".into(), redirected.clone().into());
                }
            }
        }
        Ok(FindPage {
            results: Found::Values(results),
            count,
            redirected_class_name,
        })
    }

    /// Whether [`Operations::render`] and `afterFind` would leave every object of a read as
    /// the store holds it, so that the store's JSON text can be the answer: no field hidden
    /// from this reader, no secrets in the class, nothing to include or exclude, no cut to
    /// public profiles (`directory`), no `afterFind` trigger. Any rule added to rendering must
    /// be added here too.
    fn renders_as_stored(
        &self,
        protected: Option<&ProtectedFields>,
        schema: &ClassSchema,
        tree: &IncludeTree,
        exclude_keys: &[String],
        directory: bool,
    ) -> bool {
        protected.is_none_or(ProtectedFields::hides_nothing)
            && !has_secrets(schema)
            && tree.is_empty()
            && exclude_keys.is_empty()
            && !directory
            && !self.has_trigger(super::hooks::Trigger::AfterFind, &schema.class_name)
    }

    /// `GET /classes/:className/:objectId`.
    pub async fn get(
        &self,
        auth: &Auth,
        class_name: &str,
        object_id: &str,
        request: GetRequest,
    ) -> OpResult<Value> {
        let found = self
            .get_found(auth, class_name, object_id, request, false)
            .await?;
        found
            .into_values()?
            .pop()
            .ok_or_else(|| Error::object_not_found().into())
    }

    /// [`Operations::get`] for an edge that writes the answer as JSON text (REST): the one
    /// object, as the store's text when rendering would not change it.
    pub async fn get_text(
        &self,
        auth: &Auth,
        class_name: &str,
        object_id: &str,
        request: GetRequest,
    ) -> OpResult<Found> {
        self.get_found(auth, class_name, object_id, request, true)
            .await
    }

    async fn get_found(
        &self,
        auth: &Auth,
        class_name: &str,
        object_id: &str,
        mut request: GetRequest,
        text_wanted: bool,
    ) -> OpResult<Found> {
        refuse_internal_class(class_name, ClassOperation::Get)?;
        if self.has_trigger(super::hooks::Trigger::BeforeFind, class_name) {
            // A get's beforeFind may veto it or change its keys and include.
            let mut find = FindRequest {
                where_json: serde_json::json!({"objectId": object_id}),
                keys: request.keys.clone(),
                include: request.include.clone(),
                ..FindRequest::default()
            };
            self.before_find(auth, class_name, &mut find, true).await?;
            request.keys = find.keys;
            request.include = find.include;
        }
        let schema = self
            .schemas
            .get(class_name)
            .ok_or_else(Error::object_not_found)?;
        let clp_filter = check_class_permission(&schema, ClassOperation::Get, auth)?;
        let directory = user_directory::applies(self, &schema, auth);
        let filter = id_filter(object_id)
            .and(clp_filter)
            .and(acl_filter(auth, directory));
        let store_keys = request.keys.as_ref().map(|keys| top_level_keys(keys));
        let query = FindQuery {
            filter,
            order: Vec::new(),
            skip: 0,
            limit: Some(1),
            keys: store_keys,
            score: None,
        };
        let tree = IncludeTree::build(
            &request.include,
            request.include_all,
            request.keys.as_deref(),
        );
        let protected = ProtectedFields::for_reader(&schema, auth);
        if text_wanted
            && self.renders_as_stored(
                protected.as_ref(),
                &schema,
                &tree,
                &request.exclude_keys,
                directory,
            )
        {
            let rows = self.store.find_json(&schema, &query).await?;
            if rows.len == 0 {
                return Err(Error::object_not_found().into());
            }
            return Ok(Found::Text(rows));
        }
        let objects = self.store.find(&schema, &query).await?;
        if objects.is_empty() {
            return Err(Error::object_not_found().into());
        }
        let public_only = directory_rows(directory, auth, &objects);
        let mut results = self
            .render(
                auth,
                &schema,
                objects,
                &tree,
                request.keys.as_deref(),
                &request.exclude_keys,
            )
            .await?;
        to_public_profiles(&mut results, &public_only);
        let results = results.into_iter().map(Value::Object).collect();
        let mut results = self.after_find(auth, class_name, results).await?;
        let object = results.pop().ok_or_else(Error::object_not_found)?;
        Ok(Found::Values(vec![object]))
    }

    /// The first object matching `filter`, for lookups the server makes on its own behalf
    /// (sessions, users by name or email): no access rule applies, so callers must not hand
    /// the result to a client unrendered.
    pub async fn find_first(
        &self,
        schema: &ClassSchema,
        filter: Filter,
    ) -> OpResult<Option<Object>> {
        let query = FindQuery {
            limit: Some(1),
            ..FindQuery::filter(filter)
        };
        Ok(self.store.find(schema, &query).await?.into_iter().next())
    }

    /// Object `object_id` of `class_name` as stored, for the server's own use: no access rule
    /// applies, so it must not reach a client unrendered. `None` for an unknown class or id.
    pub async fn load_object(&self, class_name: &str, object_id: &str) -> OpResult<Option<Object>> {
        let Some(schema) = self.schemas.get(class_name) else {
            return Ok(None);
        };
        self.find_first(&schema, id_filter(object_id)).await
    }

    /// [`Operations::load_object`] through `cache`: the answer read earlier, while nothing has
    /// committed to the class since (see [`ClassCache`] for another instance's writes).
    pub async fn load_cached(
        &self,
        cache: &ClassCache<Option<Object>>,
        class_name: &str,
        object_id: &str,
    ) -> OpResult<Option<Object>> {
        let stamp = cache.stamp(self.store.class_generation(class_name));
        if let Some(object) = cache.get(object_id, stamp) {
            return Ok(object);
        }
        let object = self.load_object(class_name, object_id).await?;
        cache.insert(object_id, object.clone(), stamp);
        Ok(object)
    }

    /// One object as `auth` reads it (protectedFields, secrets removed, another user cut to
    /// its public profile), without includes.
    pub async fn render_one(
        &self,
        auth: &Auth,
        schema: &ClassSchema,
        object: Object,
    ) -> OpResult<Map<String, Value>> {
        let tree = IncludeTree::default();
        let directory = user_directory::applies(self, schema, auth);
        let public_only = directory_rows(directory, auth, std::slice::from_ref(&object));
        let mut rendered = self
            .render(auth, schema, vec![object], &tree, None, &[])
            .await?;
        to_public_profiles(&mut rendered, &public_only);
        Ok(rendered.pop().unwrap_or_default())
    }

    fn redirected_schema(&self, class_name: &str, key: &str) -> OpResult<Option<Arc<ClassSchema>>> {
        let Some(schema) = self.schemas.get(class_name) else {
            return Ok(None);
        };
        match schema.field_type(key) {
            Some(FieldType::Relation(target)) => Ok(self.schemas.get(target)),
            _ => Ok(Some(schema)),
        }
    }

    /// Turns stored objects into response JSON: protectedFields, `keys`, `excludeKeys`,
    /// then `include` expansion (boxed: it recurses through the include tree).
    fn render<'a>(
        &'a self,
        auth: &'a Auth,
        schema: &'a ClassSchema,
        objects: Vec<Object>,
        tree: &'a IncludeTree,
        keys: Option<&'a [String]>,
        exclude_keys: &'a [String],
    ) -> futures::future::BoxFuture<'a, OpResult<Vec<Map<String, Value>>>> {
        Box::pin(async move {
            let protected = ProtectedFields::for_reader(schema, auth);
            let wanted = keys.map(top_level_keys);
            let mut rendered: Vec<Map<String, Value>> = objects
                .into_iter()
                .map(|object| {
                    let hidden = protected
                        .as_ref()
                        .map(|protected| protected.hidden_in(&object));
                    let mut json = object.into_json();
                    for field in hidden.into_iter().flatten() {
                        json.remove(&field);
                    }
                    strip_secrets(schema, auth, &mut json);
                    if let Some(wanted) = &wanted {
                        json.retain(|key, _| {
                            matches!(key.as_str(), "objectId" | "createdAt" | "updatedAt" | "ACL")
                                || wanted.contains(key)
                        });
                    }
                    for key in exclude_keys {
                        json.remove(key);
                    }
                    json
                })
                .collect();
            self.expand_includes(auth, schema, &mut rendered, tree)
                .await?;
            Ok(rendered)
        })
    }

    async fn expand_includes(
        &self,
        auth: &Auth,
        schema: &ClassSchema,
        objects: &mut [Map<String, Value>],
        tree: &IncludeTree,
    ) -> OpResult<()> {
        let mut fields: BTreeMap<String, &IncludeTree> =
            tree.children.iter().map(|(k, v)| (k.clone(), v)).collect();
        let empty = IncludeTree::default();
        if tree.all {
            for (name, field) in &schema.fields {
                if matches!(field.field_type, FieldType::Pointer(_)) {
                    fields.entry(name.clone()).or_insert(&empty);
                }
            }
        }
        for (field, subtree) in fields {
            // Every pointer at this field, grouped by class.
            let mut ids_by_class: HashMap<String, BTreeSet<String>> = HashMap::new();
            for object in objects.iter() {
                for (class_name, object_id) in pointers_in(object.get(&field)) {
                    ids_by_class
                        .entry(class_name)
                        .or_default()
                        .insert(object_id);
                }
            }
            let mut found: HashMap<(String, String), Map<String, Value>> = HashMap::new();
            for (class_name, ids) in ids_by_class {
                for included in self.fetch_included(auth, &class_name, ids, subtree).await? {
                    let id = included
                        .get("objectId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    found.insert((class_name.clone(), id), included);
                }
            }
            for object in objects.iter_mut() {
                replace_pointers(object, &field, &found);
            }
        }
        Ok(())
    }

    /// Loads included objects the caller may read; unreadable ones are simply absent.
    async fn fetch_included(
        &self,
        auth: &Auth,
        class_name: &str,
        ids: BTreeSet<String>,
        subtree: &IncludeTree,
    ) -> OpResult<Vec<Map<String, Value>>> {
        let Some(schema) = self.schemas.get(class_name) else {
            return Ok(Vec::new());
        };
        let Ok(clp_filter) = check_class_permission(&schema, ClassOperation::Find, auth) else {
            return Ok(Vec::new());
        };
        let ids: Vec<Operand> = ids.into_iter().map(Operand::String).collect();
        let directory = user_directory::applies(self, &schema, auth);
        let filter = Filter::Cond {
            field: object_id_field(),
            cond: Cond::In(ids),
        }
        .and(clp_filter)
        .and(acl_filter(auth, directory));
        let keys: Option<Vec<String>> = subtree
            .keys
            .as_ref()
            .map(|keys| keys.iter().cloned().collect());
        let query = FindQuery {
            filter,
            order: Vec::new(),
            skip: 0,
            limit: None,
            keys: keys.clone(),
            score: None,
        };
        let objects = self.store.find(&schema, &query).await?;
        let public_only = directory_rows(directory, auth, &objects);
        let mut rendered = self
            .render(auth, &schema, objects, subtree, keys.as_deref(), &[])
            .await?;
        to_public_profiles(&mut rendered, &public_only);
        for object in &mut rendered {
            object.insert("__type".into(), "Object".into());
            object.insert("className".into(), class_name.into());
        }
        Ok(rendered)
    }
}

/// The relevance a find asks for with `keys=$score` or `order=$score` (highest first, as
/// MongoDB's text score sorts, whichever direction is written), from its `$text` search;
/// asking for it without one is a `102`.
fn text_score(
    request: &FindRequest,
    schema: &ClassSchema,
) -> OpResult<Option<parlor_core::query::TextScore>> {
    let in_keys = request.keys.iter().flatten().any(|key| key == "$score");
    let sort = request
        .order
        .iter()
        .flat_map(|order| order.split(','))
        .any(|key| matches!(key.trim(), "$score" | "-$score"));
    if !in_keys && !sort {
        return Ok(None);
    }
    match parlor_core::query::parse::text_score(&request.where_json, schema, sort, in_keys)? {
        Some(score) => Ok(Some(score)),
        None => Err(OpError::parse(
            Code::InvalidQuery,
            "$score needs a $text search in where",
        )),
    }
}

/// The ACL part of a read's filter: what the caller's rights reach, or every row of a
/// directory read (whose other rows are cut to public profiles).
fn acl_filter(auth: &Auth, directory: bool) -> Filter {
    if directory {
        Filter::True
    } else {
        read_filter(auth)
    }
}

/// Which of a directory read's rows the caller's own rights do not reach.
fn directory_rows(directory: bool, auth: &Auth, objects: &[Object]) -> Vec<bool> {
    if !directory {
        return Vec::new();
    }
    objects
        .iter()
        .map(|object| !user_directory::readable(object, auth))
        .collect()
}

/// Cuts the rows `public_only` marks down to their public profile (render keeps the order).
fn to_public_profiles(rendered: &mut [Map<String, Value>], public_only: &[bool]) {
    for (object, public) in rendered.iter_mut().zip(public_only) {
        if *public {
            user_directory::to_public_profile(object);
        }
    }
}

fn object_id_field() -> FieldRef {
    FieldRef {
        field: "objectId".to_owned(),
        path: Vec::new(),
        field_type: Some(FieldType::String),
    }
}

fn id_filter(object_id: &str) -> Filter {
    Filter::Cond {
        field: object_id_field(),
        cond: Cond::Eq(Operand::String(object_id.to_owned())),
    }
}

/// The first segment of each key (`author.name` → `author`).
fn top_level_keys(keys: &[String]) -> Vec<String> {
    let mut top: Vec<String> = keys
        .iter()
        .filter_map(|key| key.split('.').next())
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect();
    top.sort();
    top.dedup();
    top
}

fn pointers_in(value: Option<&Value>) -> Vec<(String, String)> {
    let pointer = |value: &Value| {
        let map = value.as_object()?;
        (map.get("__type")?.as_str()? == "Pointer").then_some(())?;
        as_pointer(value).map(|(class_name, id)| (class_name.to_owned(), id.to_owned()))
    };
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(pointer).collect(),
        Some(value) => pointer(value).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Replaces the pointers of `field` by the included objects; a pointer whose target was
/// not found (missing or unreadable) disappears.
fn replace_pointers(
    object: &mut Map<String, Value>,
    field: &str,
    found: &HashMap<(String, String), Map<String, Value>>,
) {
    let lookup = |value: &Value| -> Option<Value> {
        let (class_name, id) = as_pointer(value)?;
        found
            .get(&(class_name.to_owned(), id.to_owned()))
            .cloned()
            .map(Value::Object)
    };
    match object.get(field) {
        Some(Value::Array(items)) => {
            let items: Vec<Value> = items
                .iter()
                .filter_map(|item| {
                    if as_pointer(item).is_some() {
                        lookup(item)
                    } else {
                        Some(item.clone())
                    }
                })
                .collect();
            object.insert(field.to_owned(), Value::Array(items));
        }
        Some(value) if as_pointer(value).is_some() => match lookup(value) {
            Some(included) => {
                object.insert(field.to_owned(), included);
            }
            None => {
                object.remove(field);
            }
        },
        _ => {}
    }
}

/// Fields no client may ever read back.
/// Whether [`strip_secrets`] may remove anything from this class's objects.
fn has_secrets(schema: &ClassSchema) -> bool {
    schema.class_name == "_User"
        || schema
            .fields
            .keys()
            .any(|field| parlor_core::schema::is_internal_field(field))
}

fn strip_secrets(schema: &ClassSchema, auth: &Auth, json: &mut Map<String, Value>) {
    // Server-only fields (`_hashed_password`, lockout counters, …) never leave the server.
    json.retain(|key, _| !parlor_core::schema::is_internal_field(key));
    if schema.class_name == "_User" {
        json.remove("password");
        let is_self = auth.user_id.as_deref() == json.get("objectId").and_then(Value::as_str);
        if !auth.master && !is_self {
            json.remove("authData");
        }
        json.remove("sessionToken");
    }
}

/// A non-master `where` may not test a field that protectedFields hide from the caller:
/// that would reveal its value one query at a time.
fn refuse_queries_on_hidden(
    schema: &ClassSchema,
    where_json: &Value,
    hidden: &BTreeSet<String>,
) -> OpResult<()> {
    if hidden.is_empty() {
        return Ok(());
    }
    let Some(map) = where_json.as_object() else {
        return Ok(());
    };
    for (key, value) in map {
        if matches!(key.as_str(), "$or" | "$and" | "$nor") {
            for branch in value.as_array().into_iter().flatten() {
                refuse_queries_on_hidden(schema, branch, hidden)?;
            }
            continue;
        }
        let field = key.split('.').next().unwrap_or_default();
        if hidden.contains(field) {
            return Err(OpError::parse(
                Code::OperationForbidden,
                format!(
                    "This user is not allowed to query {field} on class {}",
                    schema.class_name
                ),
            ));
        }
    }
    Ok(())
}

//! The schema cache, schema-on-write and the schemas API (§8.2).
//!
//! Schemas are read on every request, so they live in memory behind a short `std` lock;
//! changes are serialised by an async mutex and written to the store before the cache is
//! updated, so the cache never shows a class or field the database lacks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parlor_core::query::Filter;
use parlor_core::schema::{
    ClassSchema, FieldSchema, FieldType, SYSTEM_CLASSES, is_default_field, is_internal_class,
    is_valid_class_name, is_valid_field_name, parse_field, validate_clp,
};
use parlor_core::value::infer_type;
use parlor_core::{Code, Error};
use serde_json::{Map, Value, json};

use super::access::{ClassOperation, check_class_permission};
use super::{Auth, OpError, OpResult, Operations};

/// Class schemas by name, shared by every request.
#[derive(Clone, Default)]
pub struct SchemaCache {
    classes: Arc<RwLock<HashMap<String, Arc<ClassSchema>>>>,
    /// Serialises schema changes, so two requests adding the same field do not race.
    changes: Arc<tokio::sync::Mutex<()>>,
    /// Told the name of every class whose schema this instance changes (see `relay`).
    watcher: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>>,
    /// Moves on every change of any class: holders of a schema (live subscriptions) compare
    /// it, one atomic read, instead of looking their class up for every event.
    version: Arc<std::sync::atomic::AtomicU64>,
}

impl SchemaCache {
    pub fn new(schemas: Vec<ClassSchema>) -> SchemaCache {
        let cache = SchemaCache::default();
        for schema in schemas {
            cache.put(schema);
        }
        cache
    }

    /// See the `version` field.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn get(&self, class_name: &str) -> Option<Arc<ClassSchema>> {
        self.classes.read().ok()?.get(class_name).cloned()
    }

    /// A class as the schemas API shows it: the server's bookkeeping classes
    /// ([`is_internal_class`]) do not exist there, as in Parse Server.
    pub fn visible(&self, class_name: &str) -> Option<Arc<ClassSchema>> {
        if is_internal_class(class_name) {
            return None;
        }
        self.get(class_name)
    }

    /// Every class [`SchemaCache::visible`] shows, sorted by name.
    pub fn all_visible(&self) -> Vec<Arc<ClassSchema>> {
        let mut all = self.all();
        all.retain(|schema| !is_internal_class(&schema.class_name));
        all
    }

    /// Every class, sorted by name.
    pub fn all(&self) -> Vec<Arc<ClassSchema>> {
        let mut all: Vec<Arc<ClassSchema>> = self
            .classes
            .read()
            .map(|classes| classes.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.class_name.cmp(&b.class_name));
        all
    }

    fn put(&self, schema: ClassSchema) -> Arc<ClassSchema> {
        let schema = Arc::new(schema);
        if let Ok(mut classes) = self.classes.write() {
            classes.insert(schema.class_name.clone(), schema.clone());
        }
        self.bump();
        self.changed(&schema.class_name);
        schema
    }

    fn changed(&self, class_name: &str) {
        if let Some(watcher) = self.watcher.get() {
            let _ = watcher.send(class_name.to_owned());
        }
    }

    /// Reports every later schema change made through this cache to `watcher`. Set once.
    pub fn set_watcher(&self, watcher: tokio::sync::mpsc::UnboundedSender<String>) {
        let _ = self.watcher.set(watcher);
    }

    /// Takes a class's schema as another instance left it (`None`: dropped), without
    /// reporting it as a change of this instance.
    pub fn adopt(&self, class_name: &str, schema: Option<ClassSchema>) {
        if let Ok(mut classes) = self.classes.write() {
            match schema {
                Some(schema) => classes.insert(class_name.to_owned(), Arc::new(schema)),
                None => classes.remove(class_name),
            };
        }
        self.bump();
    }

    fn remove(&self, class_name: &str) {
        if let Ok(mut classes) = self.classes.write() {
            classes.remove(class_name);
        }
        self.bump();
        self.changed(class_name);
    }
}

/// How far callers without the master key may grow a class by writing fields it does not
/// have yet (schema-on-write). Each new field is a column added while every other write
/// waits, and stays for good: without a bound, one anonymous body with thousands of keys on a
/// class whose `addField` is public held the writer for seconds and left thousands of columns
/// behind. The master key (and the schemas API, which needs it) is not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaGrowth {
    /// New fields one write may add; `None`: no limit.
    pub new_fields_per_request: Option<usize>,
    /// Fields (the default ones included) a class may reach through such writes; `None`: no
    /// limit.
    pub fields_per_class: Option<usize>,
}

impl Default for SchemaGrowth {
    fn default() -> SchemaGrowth {
        SchemaGrowth {
            new_fields_per_request: Some(20),
            fields_per_class: Some(200),
        }
    }
}

impl SchemaGrowth {
    /// Refuses (255, nothing changed) a write that would add `new_fields` fields to `schema`
    /// past a limit.
    fn check(&self, schema: &ClassSchema, new_fields: usize) -> OpResult<()> {
        let class_name = &schema.class_name;
        if let Some(limit) = self.new_fields_per_request
            && new_fields > limit
        {
            return Err(OpError::parse(
                Code::InvalidSchemaOperation,
                format!(
                    "Too many new fields: this write would add {new_fields} fields to class {class_name}, \
                     and a write without the master key may add at most {limit}. \
                     Add fields with the master key (or the schemas API) instead."
                ),
            ));
        }
        let fields = schema.fields.len();
        if let Some(limit) = self.fields_per_class
            && fields + new_fields > limit
        {
            return Err(OpError::parse(
                Code::InvalidSchemaOperation,
                format!(
                    "Too many fields: class {class_name} has {fields} fields, and a write without \
                     the master key may not take it past {limit} (this one would add {new_fields}). \
                     Add fields with the master key (or the schemas API) instead."
                ),
            ));
        }
        Ok(())
    }
}

/// How many distinct fields of `wanted` `schema` does not have.
fn count_new_fields(schema: &ClassSchema, wanted: &[(String, FieldType)]) -> usize {
    let mut new_fields: Vec<&str> = wanted
        .iter()
        .map(|(field, _)| field.as_str())
        .filter(|field| !schema.fields.contains_key(*field))
        .collect();
    new_fields.sort_unstable();
    new_fields.dedup();
    new_fields.len()
}

/// Classes that exist in every deployment, created at start-up.
pub const BUILT_IN_CLASSES: [&str; 4] = ["_User", "_Role", "_Session", "_Installation"];

fn mismatch(class_name: &str, field: &str, expected: &FieldType, got: &FieldType) -> OpError {
    OpError::parse(
        Code::IncorrectType,
        format!(
            "schema mismatch for {class_name}.{field}; expected {} but got {}",
            expected.describe(),
            got.describe()
        ),
    )
}

fn invalid_class_name(class_name: &str) -> OpError {
    OpError::parse(
        Code::InvalidClassName,
        format!(
            "Invalid classname: {class_name}, classnames can only have alphanumeric characters and _, and must start with an alpha character "
        ),
    )
}

/// `clp` with `addField` closed to clients: the CLP an earlier release's template wrote for
/// `_User`, which kept clients from setting new fields on their users (`user.set('nickname',
/// …)`). The template now keeps Parse's open default there, as schema growth from clients is
/// bounded ([`SchemaGrowth`]); a deployment still holding the old CLP unchanged takes the new one.
fn with_add_field_closed(clp: &Map<String, Value>) -> Map<String, Value> {
    let mut closed = clp.clone();
    closed.insert("addField".into(), json!({}));
    closed
}

/// Whether a stored field type accepts a value of `got`'s type.
fn accepts(expected: &FieldType, got: &FieldType) -> bool {
    expected == got
}

impl Operations {
    /// Creates the built-in classes and the template's classes that do not exist yet, and
    /// adds to existing template classes the fields the template has and they lack.
    /// `template` has the `/schemas` response shape: `{"results":[schema,…]}` or an array.
    ///
    /// Several instances starting at once on an empty database race to do the same; a
    /// step that loses (the class or column exists by now) makes this instance read the
    /// stored schemas and try again, which then finds the work done.
    pub async fn bootstrap(&self, template: &Value) -> OpResult<()> {
        let mut attempts = 0;
        loop {
            match self.bootstrap_once(template).await {
                Ok(()) => return Ok(()),
                Err(error) if attempts >= 3 => return Err(error),
                Err(error) => {
                    attempts += 1;
                    tracing::info!(%error, "schema bootstrap raced another instance; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempts)).await;
                    for schema in self.store.load_schemas().await? {
                        let class_name = schema.class_name.clone();
                        self.schemas.adopt(&class_name, Some(schema));
                    }
                }
            }
        }
    }

    async fn bootstrap_once(&self, template: &Value) -> OpResult<()> {
        for class_name in BUILT_IN_CLASSES {
            if self.schemas.get(class_name).is_none() {
                self.create_class(ClassSchema::new(class_name)).await?;
            }
        }
        let schemas = template
            .get("results")
            .unwrap_or(template)
            .as_array()
            .cloned()
            .unwrap_or_default();
        for raw in schemas {
            let class_name = raw
                .get("className")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut wanted = ClassSchema::from_json(&raw)?;
            match self.schemas.get(&class_name) {
                None => {
                    self.create_class(wanted).await?;
                }
                Some(existing) if BUILT_IN_CLASSES.contains(&class_name.as_str()) => {
                    // A template extends a built-in class: add its fields once, keep the rest.
                    let missing =
                        missing_entries(&wanted.fields, |name| existing.fields.contains_key(name));
                    let has_template_clp = raw.get("classLevelPermissions").is_some();
                    if missing.is_empty() && !has_template_clp {
                        continue;
                    }
                    let _guard = self.schemas.changes.lock().await;
                    let mut after = (*existing).clone();
                    after.fields.extend(missing);
                    if has_template_clp
                        && (existing.class_level_permissions
                            == parlor_core::schema::default_clp(&class_name)
                            || existing.class_level_permissions
                                == with_add_field_closed(&wanted.class_level_permissions))
                    {
                        after.class_level_permissions =
                            std::mem::take(&mut wanted.class_level_permissions);
                    }
                    if after != *existing {
                        self.store.update_class(&existing, &after).await?;
                        self.schemas.put(after);
                    }
                }
                // A template class made by an older version: the fields and indexes the
                // template has gained since are added (none is changed or removed, nor the
                // CLPs), so what the server reads from them (a persona's `tools`, a tool
                // call's `toolCall`) exists, clients may write them as on a new database,
                // and the server's own queries (the sweep of orphaned replies) have their index.
                Some(existing) => {
                    let missing =
                        missing_entries(&wanted.fields, |name| existing.fields.contains_key(name));
                    let missing_indexes = missing_entries(&wanted.indexes, |name| {
                        existing.indexes.contains_key(name)
                    });
                    if missing.is_empty() && missing_indexes.is_empty() {
                        continue;
                    }
                    let _guard = self.schemas.changes.lock().await;
                    let mut after = (*existing).clone();
                    after.fields.extend(missing);
                    after.indexes.extend(missing_indexes);
                    self.store.update_class(&existing, &after).await?;
                    self.schemas.put(after);
                }
            }
        }
        Ok(())
    }

    async fn create_class(&self, schema: ClassSchema) -> OpResult<Arc<ClassSchema>> {
        let _guard = self.schemas.changes.lock().await;
        if let Some(existing) = self.schemas.get(&schema.class_name) {
            return Ok(existing);
        }
        // Another instance sharing the database may have created it a moment ago.
        if let Some(stored) = self.reload_class(&schema.class_name).await? {
            return Ok(stored);
        }
        self.check_class_name_free(&schema.class_name)?;
        if let Err(error) = self.store.create_class(&schema).await {
            return match self.reload_class(&schema.class_name).await? {
                Some(stored) => Ok(stored),
                None => Err(error.into()),
            };
        }
        Ok(self.schemas.put(schema))
    }

    /// The class as the database holds it now, taken into the cache (`None`: no such class).
    /// Instances sharing a database learn of each other's schema changes through the relay,
    /// which can lag a write by a moment; schema changes read the stored truth first.
    async fn reload_class(&self, class_name: &str) -> OpResult<Option<Arc<ClassSchema>>> {
        let stored = self
            .store
            .load_schemas()
            .await?
            .into_iter()
            .find(|schema| schema.class_name == class_name);
        let Some(stored) = stored else {
            return Ok(None);
        };
        self.schemas.adopt(class_name, Some(stored));
        Ok(self.schemas.get(class_name))
    }

    /// Class names that the database would confuse are refused up front: names equal but
    /// for letter case (SQL identifiers ignore case), and names the backend reserves.
    fn check_class_name_free(&self, class_name: &str) -> OpResult<()> {
        if self.store.reserves_class_name(class_name) {
            return Err(OpError::parse(
                Code::InvalidClassName,
                format!("Invalid class name: {class_name} is reserved by the database."),
            ));
        }
        let clash = self.schemas.all().into_iter().find(|existing| {
            existing.class_name != class_name
                && existing.class_name.eq_ignore_ascii_case(class_name)
        });
        if let Some(existing) = clash {
            return Err(OpError::parse(
                Code::InvalidClassName,
                format!(
                    "Class {class_name} conflicts with class {}: class names must differ in more than letter case.",
                    existing.class_name
                ),
            ));
        }
        Ok(())
    }

    /// The class a write goes to, creating it when the caller may (master, or client class
    /// creation enabled; system classes always).
    pub async fn class_for_write(
        &self,
        auth: &Auth,
        class_name: &str,
    ) -> OpResult<Arc<ClassSchema>> {
        if let Some(schema) = self.schemas.get(class_name) {
            return Ok(schema);
        }
        if !is_valid_class_name(class_name) {
            return Err(invalid_class_name(class_name));
        }
        let system = SYSTEM_CLASSES.contains(&class_name);
        if !(auth.master || system || self.config.allow_client_class_creation) {
            return Err(OpError::parse(
                Code::OperationForbidden,
                format!("This user is not allowed to access non-existent class: {class_name}"),
            ));
        }
        self.create_class(ClassSchema::new(class_name)).await
    }

    /// One of the server's bookkeeping classes ([`is_internal_class`]) with `fields`, created
    /// or extended if needed. Only the server's own code calls this: the object API refuses
    /// these classes to every caller (`access::refuse_internal_class`).
    pub(super) async fn internal_class(
        &self,
        class_name: &str,
        fields: &[(String, FieldType)],
    ) -> OpResult<Arc<ClassSchema>> {
        let schema = match self.schemas.get(class_name) {
            Some(schema) => schema,
            None => self.create_class(ClassSchema::new(class_name)).await?,
        };
        self.ensure_fields(&Auth::master(), schema, fields).await
    }

    /// Makes sure every `(field, type)` exists in the class with a compatible type, adding
    /// new fields (schema-on-write) when the caller's `addField` permission allows it.
    pub async fn ensure_fields(
        &self,
        auth: &Auth,
        schema: Arc<ClassSchema>,
        wanted: &[(String, FieldType)],
    ) -> OpResult<Arc<ClassSchema>> {
        let mut missing = false;
        for (field, field_type) in wanted {
            match schema.field_type(field) {
                Some(existing) if !accepts(existing, field_type) => {
                    return Err(mismatch(&schema.class_name, field, existing, field_type));
                }
                Some(_) => {}
                None => missing = true,
            }
        }
        if !missing {
            return Ok(schema);
        }
        // A bookkeeping class is only ever extended by the server itself (`internal_class`):
        // every client path was refused before it got here.
        if !is_internal_class(&schema.class_name)
            && check_class_permission(&schema, ClassOperation::AddField, auth)? != Filter::True
        {
            return Err(OpError::parse(
                Code::OperationForbidden,
                format!(
                    "Permission denied for action addField on class {}.",
                    schema.class_name
                ),
            ));
        }
        // Growth is bounded for clients; the server's own bookkeeping and the master key are
        // not. Checked before queueing for the schema lock, so a refused body costs no wait,
        // and again under it, against the class as stored.
        let bounded = !auth.master && !is_internal_class(&schema.class_name);
        let growth = self.config.schema_growth;
        if bounded {
            growth.check(&schema, count_new_fields(&schema, wanted))?;
        }
        let _guard = self.schemas.changes.lock().await;
        // Another request (or another instance) may have changed the class meanwhile.
        let before = match self.reload_class(&schema.class_name).await? {
            Some(stored) => stored,
            None => self.schemas.get(&schema.class_name).unwrap_or(schema),
        };
        if bounded {
            growth.check(&before, count_new_fields(&before, wanted))?;
        }
        let mut after = (*before).clone();
        for (field, field_type) in wanted {
            match after.field_type(field) {
                Some(existing) if !accepts(existing, field_type) => {
                    return Err(mismatch(&after.class_name, field, existing, field_type));
                }
                Some(_) => {}
                None => {
                    check_new_field(&after, field, field_type)?;
                    after
                        .fields
                        .insert(field.clone(), FieldSchema::of(field_type.clone()));
                }
            }
        }
        if after == *before {
            return Ok(before);
        }
        if let Err(error) = self.store.update_class(&before, &after).await {
            // Another instance may have added the same fields at the same moment: what it
            // stored is as good, if it has them with the wanted types.
            if let Some(stored) = self.reload_class(&before.class_name).await?
                && wanted.iter().all(|(field, field_type)| {
                    stored
                        .field_type(field)
                        .is_some_and(|existing| accepts(existing, field_type))
                })
            {
                return Ok(stored);
            }
            return Err(error.into());
        }
        Ok(self.schemas.put(after))
    }

    /// `GET /schemas`: the master key, or an admin user (see [`Operations::require_schema_reader`]).
    ///
    /// As in Parse Server, where a built-in class exists once something created it, a
    /// built-in class that is still as the server made it (its default schema, no objects)
    /// is not listed.
    pub async fn all_schemas(&self, auth: &Auth) -> OpResult<Value> {
        self.require_schema_reader(auth).await?;
        let results: Vec<Value> = self
            .listed_schemas()
            .await?
            .iter()
            .map(|schema| schema.to_json())
            .collect();
        Ok(super::read::results_body(results))
    }

    /// The classes `GET /schemas` lists (and `parlor schema` prints): the visible ones but the
    /// built-in classes still as the server made them. No access check: callers check.
    pub async fn listed_schemas(&self) -> OpResult<Vec<Arc<ClassSchema>>> {
        let mut listed = Vec::new();
        for schema in self.schemas.all_visible() {
            if !self.is_pristine_built_in(&schema).await? {
                listed.push(schema);
            }
        }
        Ok(listed)
    }

    /// A built-in class with its default schema and no objects.
    async fn is_pristine_built_in(&self, schema: &ClassSchema) -> OpResult<bool> {
        if !BUILT_IN_CLASSES.contains(&schema.class_name.as_str()) {
            return Ok(false);
        }
        let fresh = ClassSchema::new(&schema.class_name);
        if schema.fields != fresh.fields
            || schema.indexes != fresh.indexes
            || schema.class_level_permissions != fresh.class_level_permissions
        {
            return Ok(false);
        }
        Ok(self.store.count(schema, &Filter::True).await? == 0)
    }

    /// `GET /schemas/:className`: as [`Operations::all_schemas`].
    pub async fn get_schema(&self, auth: &Auth, class_name: &str) -> OpResult<Value> {
        self.require_schema_reader(auth).await?;
        self.schemas
            .visible(class_name)
            .map(|schema| schema.to_json())
            .ok_or_else(|| class_missing(class_name))
    }

    /// `POST /schemas[/:className]`.
    pub async fn create_schema(
        &self,
        auth: &Auth,
        path_class: Option<&str>,
        body: &Value,
    ) -> OpResult<Value> {
        require_master(auth)?;
        let body_class = body.get("className").and_then(Value::as_str);
        let class_name = match (path_class, body_class) {
            (Some(path), Some(body)) if path != body => {
                return Err(OpError::parse(
                    Code::InvalidClassName,
                    format!("Class name mismatch between {body} and {path}."),
                ));
            }
            (Some(name), _) | (None, Some(name)) => name.to_owned(),
            (None, None) => {
                return Err(OpError::parse(
                    Code::ClassNameMissing,
                    "POST /schemas needs a class name.",
                ));
            }
        };
        if !is_valid_class_name(&class_name) {
            return Err(invalid_class_name(&class_name));
        }
        if self.schemas.get(&class_name).is_some() {
            return Err(OpError::parse(
                Code::InvalidClassName,
                format!("Class {class_name} already exists."),
            ));
        }
        let mut schema = ClassSchema::new(&class_name);
        apply_schema_changes(&mut schema, body, true)?;
        let created = self.create_class(schema).await?;
        Ok(created.to_json())
    }

    /// `PUT /schemas/:className`.
    pub async fn update_schema(
        &self,
        auth: &Auth,
        class_name: &str,
        body: &Value,
    ) -> OpResult<Value> {
        require_master(auth)?;
        let _guard = self.schemas.changes.lock().await;
        let before = self
            .schemas
            .visible(class_name)
            .ok_or_else(|| class_missing(class_name))?;
        let mut after = (*before).clone();
        apply_schema_changes(&mut after, body, false)?;
        self.store.update_class(&before, &after).await?;
        Ok(self.schemas.put(after).to_json())
    }

    /// `DELETE /schemas/:className`: only an empty class can be dropped; an empty built-in
    /// class is reset to its default schema.
    pub async fn delete_schema(&self, auth: &Auth, class_name: &str) -> OpResult<Value> {
        require_master(auth)?;
        let _guard = self.schemas.changes.lock().await;
        let Some(schema) = self.schemas.visible(class_name) else {
            return Ok(json!({}));
        };
        let count = self.store.count(&schema, &Filter::True).await?;
        if count > 0 {
            return Err(OpError::parse(
                Code::InvalidSchemaOperation,
                format!(
                    "Class {class_name} is not empty, contains {count} objects, cannot drop schema."
                ),
            ));
        }
        if BUILT_IN_CLASSES.contains(&class_name) {
            // Parse Server drops an empty built-in class and recreates it on next use; the
            // server's own code needs the class, so it goes back to its default schema.
            let fresh = ClassSchema::new(class_name);
            self.store.update_class(&schema, &fresh).await?;
            self.schemas.put(fresh);
            return Ok(json!({}));
        }
        self.store.drop_class(class_name).await?;
        self.schemas.remove(class_name);
        Ok(json!({}))
    }

    /// `DELETE /purge/:className`: deletes every object, keeps the class.
    pub async fn purge_class(&self, auth: &Auth, class_name: &str) -> OpResult<Value> {
        require_master(auth)?;
        if self.schemas.visible(class_name).is_some() {
            self.store.purge_class(class_name).await?;
        }
        Ok(json!({}))
    }
}

impl Operations {
    /// Who may read the schema (`GET /schemas`, `GET /openapi.json`): the master key, or a
    /// user whose own `_User.role` is `"admin"` (a field only the master key or another
    /// admin can set), read from the database on each call so a demotion counts at once.
    /// Reading the schema shows the shape of the data and its permissions, never an object:
    /// what an admin may read or write is still what its ACLs and CLPs allow, and changing
    /// the schema stays the master key's.
    pub async fn require_schema_reader(&self, auth: &Auth) -> OpResult<()> {
        if auth.master || self.caller_is_admin(auth).await? {
            Ok(())
        } else {
            Err(OpError::MasterKeyRequired)
        }
    }
}

/// The one check for master-only operations (schemas API, `/serverInfo`, `/loginAs`).
pub fn require_master(auth: &Auth) -> OpResult<()> {
    if auth.master {
        Ok(())
    } else {
        Err(OpError::MasterKeyRequired)
    }
}

fn class_missing(class_name: &str) -> OpError {
    OpError::parse(
        Code::InvalidClassName,
        format!("Class {class_name} does not exist."),
    )
}

fn check_new_field(schema: &ClassSchema, field: &str, field_type: &FieldType) -> Result<(), Error> {
    if !is_valid_field_name(field) {
        return Err(Error::invalid_key_name(format!(
            "invalid field name: {field}"
        )));
    }
    // SQL column names ignore letter case, so `name` and `Name` cannot both be columns.
    if let Some(existing) = schema
        .fields
        .keys()
        .find(|existing| *existing != field && existing.eq_ignore_ascii_case(field))
    {
        return Err(Error::new(
            Code::InvalidSchemaOperation,
            format!(
                "Field {field} conflicts with field {existing}: field names must differ in more than letter case."
            ),
        ));
    }
    if *field_type == FieldType::GeoPoint
        && schema
            .fields
            .iter()
            .any(|(name, existing)| name != field && existing.field_type == FieldType::GeoPoint)
    {
        return Err(Error::incorrect_type(format!(
            "currently, only one GeoPoint field may exist in an object. Adding {field} when another already exists."
        )));
    }
    Ok(())
}

/// Applies a schemas-API body (`fields`, `classLevelPermissions`, `indexes`) to `schema`.
fn apply_schema_changes(
    schema: &mut ClassSchema,
    body: &Value,
    creating: bool,
) -> Result<(), Error> {
    let class_name = schema.class_name.clone();
    if let Some(fields) = body.get("fields") {
        let fields = fields
            .as_object()
            .ok_or_else(|| Error::invalid_json("fields must be an object"))?;
        for (name, definition) in fields {
            let deleting = definition.get("__op").and_then(Value::as_str) == Some("Delete");
            if is_default_field(&class_name, name) {
                let verb = if creating { "added" } else { "changed" };
                return Err(Error::new(
                    Code::ChangedImmutableField,
                    format!("field {name} cannot be {verb}"),
                ));
            }
            if deleting {
                if schema.fields.remove(name).is_none() {
                    return Err(Error::new(
                        Code::InvalidSchemaOperation,
                        format!("Field {name} does not exist, cannot delete."),
                    ));
                }
                continue;
            }
            if schema.fields.contains_key(name) {
                return Err(Error::new(
                    Code::InvalidSchemaOperation,
                    format!("Field {name} exists, cannot update."),
                ));
            }
            if !is_valid_field_name(name) {
                return Err(Error::invalid_key_name(format!(
                    "invalid field name: {name}"
                )));
            }
            let field = parse_field(definition)?;
            if let Some(default_value) = &field.default_value {
                let got = infer_type(default_value);
                if got.as_ref() != Some(&field.field_type) {
                    let got = got
                        .map(|t| t.describe())
                        .unwrap_or_else(|| "invalid value".to_owned());
                    return Err(Error::incorrect_type(format!(
                        "schema mismatch for {class_name}.{name} default value; expected {} but got {got}",
                        field.field_type.describe()
                    )));
                }
            }
            check_new_field(schema, name, &field.field_type)?;
            schema.fields.insert(name.clone(), field);
        }
    }
    if let Some(clp) = body.get("classLevelPermissions")
        && !clp.is_null()
    {
        // A value that is not an object counts as `{}`, as in Parse Server (whose SDK suite
        // sets `1234` and expects every operation closed). An operation absent from a
        // written CLP means nobody but master (§8.1).
        let empty = Map::new();
        let clp = clp.as_object().unwrap_or(&empty);
        schema.class_level_permissions = validate_clp(clp)?;
    }
    if let Some(indexes) = body.get("indexes") {
        let indexes = indexes
            .as_object()
            .ok_or_else(|| Error::invalid_json("indexes must be an object"))?;
        apply_index_changes(schema, indexes)?;
    }
    Ok(())
}

fn apply_index_changes(
    schema: &mut ClassSchema,
    indexes: &Map<String, Value>,
) -> Result<(), Error> {
    for (name, definition) in indexes {
        if definition.get("__op").and_then(Value::as_str) == Some("Delete") {
            if schema.indexes.remove(name).is_none() {
                return Err(Error::new(
                    Code::InvalidSchemaOperation,
                    format!("Index {name} does not exist, cannot delete."),
                ));
            }
            continue;
        }
        if schema.indexes.contains_key(name) {
            return Err(Error::new(
                Code::InvalidSchemaOperation,
                format!("Index {name} exists, cannot update."),
            ));
        }
        let keys = definition
            .as_object()
            .filter(|keys| !keys.is_empty())
            .ok_or_else(|| Error::invalid_json(format!("Index {name} must name its fields")))?;
        for (field, direction) in keys {
            if !schema.fields.contains_key(field) {
                return Err(Error::new(
                    Code::InvalidSchemaOperation,
                    format!("Field {field} does not exist, cannot add index."),
                ));
            }
            if !matches!(direction.as_i64(), Some(1) | Some(-1)) {
                return Err(Error::invalid_json(format!(
                    "Index {name}: direction of {field} must be 1 or -1"
                )));
            }
        }
        if !is_valid_field_name(name) && name != "_id_" {
            return Err(Error::invalid_key_name(format!(
                "invalid index name: {name}"
            )));
        }
        schema.indexes.insert(name.clone(), definition.clone());
    }
    Ok(())
}

/// The entries of `wanted` whose name `has` does not know: what a template adds to a class
/// made before it had them.
fn missing_entries<'w, V: Clone + 'w>(
    wanted: impl IntoIterator<Item = (&'w String, &'w V)>,
    has: impl Fn(&str) -> bool,
) -> Vec<(String, V)> {
    wanted
        .into_iter()
        .filter(|(name, _)| !has(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

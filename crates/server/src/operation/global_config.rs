//! `/config` (§13): app-wide parameters clients read with `Parse.Config.get()`, written with
//! the master key. Kept as one object of the `_GlobalConfig` class; parameters marked
//! `masterKeyOnly` are never shown to other callers.

use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::Operand;
use parlor_core::schema::FieldType;
use parlor_core::value::now_iso;
use parlor_core::{Code, Error};
use parlor_store::{StoreError, Write};
use serde_json::{Map, Value, json};

use super::schema::require_master;
use super::write::equals;
use super::{Auth, OpError, OpResult, Operations};

const CLASS: &str = "_GlobalConfig";
const ID: &str = "1";

impl Operations {
    async fn stored_config(&self) -> OpResult<(Map<String, Value>, Map<String, Value>)> {
        let Some(schema) = self.schemas.get(CLASS) else {
            return Ok((Map::new(), Map::new()));
        };
        let found = self
            .find_first(
                &schema,
                equals(&schema, "objectId", Operand::String(ID.to_owned())),
            )
            .await?;
        let field = |name: &str| {
            found
                .as_ref()
                .and_then(|config| config.fields.get(name))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        Ok((field("params"), field("masterKeyOnly")))
    }

    /// `GET /config`.
    pub async fn get_config(&self, auth: &Auth) -> OpResult<Value> {
        let (params, master_only) = self.stored_config().await?;
        if auth.master {
            return Ok(json!({"params": params, "masterKeyOnly": master_only}));
        }
        let visible: Map<String, Value> = params
            .into_iter()
            .filter(|(name, _)| master_only.get(name) != Some(&Value::Bool(true)))
            .collect();
        Ok(json!({ "params": visible }))
    }

    /// `PUT /config` (master key): sets or deletes (`{"__op":"Delete"}`) parameters.
    pub async fn update_config(&self, auth: &Auth, body: &Map<String, Value>) -> OpResult<Value> {
        require_master(auth)?;
        let invalid = || {
            OpError::Parse(Error::new(
                Code::InvalidJson,
                "config params must be an object",
            ))
        };
        let changes = match body.get("params") {
            None => Map::new(),
            Some(Value::Object(changes)) => changes.clone(),
            Some(_) => return Err(invalid()),
        };
        let master_changes = match body.get("masterKeyOnly") {
            None => Map::new(),
            Some(Value::Object(changes)) => changes.clone(),
            Some(_) => return Err(invalid()),
        };
        let (mut params, mut master_only) = self.stored_config().await?;
        for (name, value) in changes {
            if value.get("__op").and_then(Value::as_str) == Some("Delete") {
                params.remove(&name);
                master_only.remove(&name);
            } else {
                params.insert(name, parlor_core::value::validate_typed(&value)?);
            }
        }
        for (name, flag) in master_changes {
            match flag {
                Value::Bool(true) => master_only.insert(name, Value::Bool(true)),
                _ => master_only.remove(&name),
            };
        }
        let schema = self
            .internal_class(
                CLASS,
                &[
                    ("params".to_owned(), FieldType::Object),
                    ("masterKeyOnly".to_owned(), FieldType::Object),
                ],
            )
            .await?;
        let set = |field: &str, value: Map<String, Value>| FieldUpdate {
            field: field.to_owned(),
            path: Vec::new(),
            op: FieldOp::Set(Value::Object(value)),
        };
        let updates = vec![
            set("params", params.clone()),
            set("masterKeyOnly", master_only.clone()),
        ];
        let update = Write::Update {
            schema: schema.clone(),
            object_id: ID.to_owned(),
            guard: parlor_core::query::Filter::True,
            updates,
            updated_at: now_iso(),
        };
        match self.store.write(vec![update]).await {
            Ok(_) => {}
            Err(StoreError::ObjectNotFound) => {
                let mut fields = Map::new();
                fields.insert("params".into(), Value::Object(params));
                fields.insert("masterKeyOnly".into(), Value::Object(master_only));
                let now = now_iso();
                let object = parlor_core::object::Object {
                    object_id: ID.to_owned(),
                    created_at: now.clone(),
                    updated_at: now,
                    acl: None,
                    fields,
                };
                self.store
                    .write(vec![Write::Create {
                        schema,
                        object,
                        relations: Vec::new(),
                    }])
                    .await?;
            }
            Err(other) => return Err(other.into()),
        }
        Ok(json!({"result": true}))
    }
}

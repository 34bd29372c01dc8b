//! A stored object and its ACL (§2, §7).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{Code, Error, Result};

/// An object as the store holds it. `fields` are Parse-encoded values keyed by field name,
/// without the four default fields, which have their own members.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    pub object_id: String,
    /// ISO text in Parse's format (`2024-05-01T12:34:56.789Z`).
    pub created_at: String,
    pub updated_at: String,
    /// `None` means public read and write.
    pub acl: Option<Acl>,
    pub fields: Map<String, Value>,
}

impl Object {
    /// The REST shape: fields, `objectId`, `createdAt`, `updatedAt` and `ACL` when set.
    pub fn to_json(&self) -> Map<String, Value> {
        self.clone().into_json()
    }

    /// [`Object::to_json`] without copying the fields: reads render many objects.
    pub fn into_json(self) -> Map<String, Value> {
        let mut map = self.fields;
        map.insert("objectId".into(), self.object_id.into());
        map.insert("createdAt".into(), self.created_at.into());
        map.insert("updatedAt".into(), self.updated_at.into());
        if let Some(acl) = &self.acl {
            map.insert("ACL".into(), acl.to_json());
        }
        map
    }

    /// The inverse of [`Object::into_json`]: an object as it travels between instances.
    pub fn from_json(mut map: Map<String, Value>) -> Result<Object> {
        let mut text = |key: &str| match map.remove(key) {
            Some(Value::String(text)) => Ok(text),
            _ => Err(Error::new(
                Code::InvalidJson,
                format!("an object's {key} must be a string"),
            )),
        };
        let object_id = text("objectId")?;
        let created_at = text("createdAt")?;
        let updated_at = text("updatedAt")?;
        let acl = match map.remove("ACL") {
            Some(acl) => Some(Acl::from_json(&acl)?),
            None => None,
        };
        Ok(Object {
            object_id,
            created_at,
            updated_at,
            acl,
            fields: map,
        })
    }

    /// A field's value, with the default fields reachable by name as a matcher sees them
    /// (`createdAt`/`updatedAt` as Dates).
    pub fn get(&self, field: &str) -> Option<Value> {
        match field {
            "objectId" => Some(Value::String(self.object_id.clone())),
            "createdAt" => Some(crate::value::date_value(&self.created_at)),
            "updatedAt" => Some(crate::value::date_value(&self.updated_at)),
            "ACL" => self.acl.as_ref().map(Acl::to_json),
            _ => self.fields.get(field).cloned(),
        }
    }
}

/// Read and write grants of one ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permission {
    pub read: bool,
    pub write: bool,
}

/// An object's ACL: entry (`*`, a user id, `role:Name`) → grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    pub entries: BTreeMap<String, Permission>,
}

impl Acl {
    /// Parses a client-written ACL; anything malformed is `123 INVALID_ACL`.
    pub fn from_json(value: &Value) -> Result<Acl> {
        let invalid = || Error::new(Code::InvalidAcl, "Invalid ACL.");
        let map = value.as_object().ok_or_else(invalid)?;
        let mut entries = BTreeMap::new();
        for (entry, grants) in map {
            let grants = grants.as_object().ok_or_else(invalid)?;
            let mut permission = Permission::default();
            for (grant, allowed) in grants {
                let allowed = allowed.as_bool().ok_or_else(invalid)?;
                match grant.as_str() {
                    "read" => permission.read = allowed,
                    "write" => permission.write = allowed,
                    _ => return Err(invalid()),
                }
            }
            let entry_valid = entry == "*"
                || entry
                    .strip_prefix("role:")
                    .is_some_and(|role| !role.is_empty())
                || (!entry.is_empty()
                    && entry
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            if !entry_valid {
                return Err(invalid());
            }
            if permission.read || permission.write {
                entries.insert(entry.clone(), permission);
            }
        }
        Ok(Acl { entries })
    }

    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .entries
            .iter()
            .map(|(entry, permission)| {
                let mut grants = Map::new();
                if permission.read {
                    grants.insert("read".into(), true.into());
                }
                if permission.write {
                    grants.insert("write".into(), true.into());
                }
                (entry.clone(), Value::Object(grants))
            })
            .collect();
        Value::Object(map)
    }

    /// The entries that may read (Parse's `_rperm`).
    pub fn readers(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, p)| p.read)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The entries that may write (Parse's `_wperm`).
    pub fn writers(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, p)| p.write)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Rebuilds an ACL from `_rperm`/`_wperm` lists.
    pub fn from_perms<S: AsRef<str>>(readers: &[S], writers: &[S]) -> Acl {
        let mut entries: BTreeMap<String, Permission> = BTreeMap::new();
        for reader in readers {
            entries.entry(reader.as_ref().to_owned()).or_default().read = true;
        }
        for writer in writers {
            entries.entry(writer.as_ref().to_owned()).or_default().write = true;
        }
        Acl { entries }
    }

    /// Whether any entry of `group` (`*`, user id, `role:…`) may read.
    pub fn can_read(&self, group: &[String]) -> bool {
        group
            .iter()
            .any(|entry| self.entries.get(entry).is_some_and(|p| p.read))
    }

    /// Whether any entry of `group` may write.
    pub fn can_write(&self, group: &[String]) -> bool {
        group
            .iter()
            .any(|entry| self.entries.get(entry).is_some_and(|p| p.write))
    }

    pub fn public_read_write() -> Value {
        json!({"*": {"read": true, "write": true}})
    }
}

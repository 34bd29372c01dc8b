//! `X-Parse-Request-Id` (§1.6): the first request with an id claims it for a while; a
//! repeat within that time is refused with `159 Duplicate request`.
//!
//! Claims are rows of the `_Idempotency` class keyed by the request id, so every instance
//! sharing the database sees them.

use std::sync::Arc;

use chrono::{Duration, Utc};
use parlor_core::object::Object;
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::value::{as_date, date_value, format_date, now_iso};
use parlor_core::{Code, Error};
use parlor_store::{StoreError, Write};
use serde_json::Map;

use super::write::equals;
use super::{OpError, OpResult, Operations};

const CLASS: &str = "_Idempotency";

impl Operations {
    /// Claims `request_id` for `ttl_seconds`; a live earlier claim is `159`.
    pub async fn claim_request_id(&self, request_id: &str, ttl_seconds: u64) -> OpResult<()> {
        let schema = self.idempotency_class().await?;
        let now = now_iso();
        let expire = format_date(
            Utc::now() + Duration::seconds(ttl_seconds.min(i64::MAX as u64 / 1000) as i64),
        );
        let mut fields = Map::new();
        fields.insert("expire".into(), date_value(&expire));
        let object = Object {
            object_id: request_id.to_owned(),
            created_at: now.clone(),
            updated_at: now.clone(),
            acl: None,
            fields,
        };
        let create = Write::Create {
            schema: schema.clone(),
            object,
            relations: Vec::new(),
        };
        match self.store.write(vec![create]).await {
            Ok(_) => return Ok(()),
            Err(StoreError::DuplicateValue) => {}
            Err(other) => return Err(other.into()),
        }
        let duplicate = || OpError::Parse(Error::new(Code::DuplicateRequest, "Duplicate request"));
        let query = FindQuery {
            limit: Some(1),
            ..FindQuery::filter(equals(
                &schema,
                "objectId",
                Operand::String(request_id.to_owned()),
            ))
        };
        let existing = self.store.find(&schema, &query).await?;
        let expired = existing
            .first()
            .and_then(|claim| claim.fields.get("expire").and_then(as_date))
            .is_some_and(|previous| previous <= now);
        if !expired {
            return Err(duplicate());
        }
        // The earlier claim ran out: take it over, unless another request just did.
        let still_expired = Filter::Cond {
            field: FieldRef {
                field: "expire".into(),
                path: Vec::new(),
                field_type: Some(FieldType::Date),
            },
            cond: Cond::Lte(Operand::Date(now.clone())),
        };
        let renew = Write::Update {
            schema,
            object_id: request_id.to_owned(),
            guard: still_expired,
            updates: vec![FieldUpdate {
                field: "expire".into(),
                path: Vec::new(),
                op: FieldOp::Set(date_value(&expire)),
            }],
            updated_at: now,
        };
        match self.store.write(vec![renew]).await {
            Ok(_) => Ok(()),
            Err(StoreError::ObjectNotFound) => Err(duplicate()),
            Err(other) => Err(other.into()),
        }
    }

    async fn idempotency_class(&self) -> OpResult<Arc<ClassSchema>> {
        self.internal_class(CLASS, &[("expire".to_owned(), FieldType::Date)])
            .await
    }
}

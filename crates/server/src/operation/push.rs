//! `POST /push` (master key): accepted and recorded in `_PushStatus`, as Parse Server does
//! with no push adapter able to deliver. Nothing is sent to devices; the status says so
//! (`succeeded` with `numSent: 0`), and the SDKs' `Parse.Push.send` / `getPushStatus` work.

use parlor_core::value::now_iso;
use parlor_core::{Code, Error};
use serde_json::{Map, Value, json};

use super::schema::require_master;
use super::{Auth, OpError, OpResult, Operations};

impl Operations {
    /// Records a push and answers the id of its `_PushStatus`.
    pub async fn send_push(&self, auth: &Auth, body: &Map<String, Value>) -> OpResult<String> {
        require_master(auth)?;
        let misconfigured =
            |message: &str| OpError::parse(Code::PushMisconfigured, message.to_owned());
        let query = match (body.get("where"), body.get("channels")) {
            (Some(_), Some(_)) => {
                return Err(misconfigured(
                    "Channels and query can not be set at the same time.",
                ));
            }
            (Some(query), None) => query.clone(),
            (None, Some(channels)) => json!({"channels": {"$in": channels}}),
            (None, None) => {
                return Err(misconfigured(
                    "Sending a push requires either \"channels\" or a \"where\" query.",
                ));
            }
        };
        let data = body.get("data").cloned().unwrap_or_else(|| json!({}));
        let push_time = match body.get("push_time") {
            Some(Value::String(time)) => time.clone(),
            _ => now_iso(),
        };
        let mut status = Map::new();
        status.insert("pushTime".into(), push_time.into());
        status.insert("query".into(), query.to_string().into());
        status.insert("payload".into(), data.to_string().into());
        status.insert("source".into(), "rest".into());
        status.insert("status".into(), "succeeded".into());
        status.insert("numSent".into(), 0.into());
        status.insert("numFailed".into(), 0.into());
        status.insert("count".into(), 0.into());
        if let Some(Value::String(title)) = data.get("title") {
            status.insert("title".into(), title.clone().into());
        }
        let planned = self
            .plan_create(&Auth::master(), "_PushStatus", &status)
            .await?;
        let created = self.commit_one(planned).await?;
        created.body["objectId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }
}

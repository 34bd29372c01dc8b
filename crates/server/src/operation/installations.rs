//! `_Installation` (§13): the mobile SDKs register their device at start-up with
//! `POST /installations`; an installation already known by its `installationId` (or
//! `deviceToken`) is updated instead of duplicated.

use parlor_core::query::{Filter, Operand};
use serde_json::{Map, Value};

use super::write::{WriteResponse, equals};
use super::{Auth, OpResult, Operations};

impl Operations {
    /// `POST /installations`: creates the installation, or updates the stored one (`200`).
    pub async fn save_installation(
        &self,
        auth: &Auth,
        body: &Map<String, Value>,
    ) -> OpResult<WriteResponse> {
        let schema = self.class_for_write(auth, "_Installation").await?;
        let key = |field: &str| {
            body.get(field)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(|value| equals(&schema, field, Operand::String(value.to_owned())))
        };
        let known: Vec<Filter> = ["installationId", "deviceToken"]
            .into_iter()
            .filter_map(key)
            .collect();
        let existing = match known.is_empty() {
            true => None,
            false => self.find_first(&schema, Filter::Or(known)).await?,
        };
        match existing {
            // The device identifies itself by its installation id: the update is the server's
            // own, like Parse Server's, so the class's find/delete restrictions do not apply.
            Some(installation) => {
                let mut body = body.clone();
                body.remove("objectId");
                let plan = self
                    .plan_update(
                        &Auth::master(),
                        "_Installation",
                        &installation.object_id,
                        &body,
                    )
                    .await?;
                self.commit_one(plan).await
            }
            None => {
                let plan = self.plan_create(auth, "_Installation", body).await?;
                self.commit_one(plan).await
            }
        }
    }
}

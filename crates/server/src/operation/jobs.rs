//! Cloud Code jobs: runs started with `POST /jobs/:name` (each recorded in `_JobStatus`), and
//! the schedules Parse Dashboard keeps in `_JobSchedule` (`/cloud_code/jobs`). As in Parse
//! Server, a schedule is only stored: an outside scheduler (cron) starts the runs. Master key
//! only.

use serde_json::{Map, Value, json};

use parlor_core::Code;

use super::schema::require_master;
use super::{Auth, FindRequest, OpError, OpResult, Operations};

const SCHEDULES: &str = "_JobSchedule";

impl Operations {
    /// `POST /jobs/:name`: records a `_JobStatus` (`running`) and starts the job; the
    /// status's objectId. Master key only; an unknown job is `141 Invalid job.`
    pub async fn start_job(
        &self,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
    ) -> OpResult<String> {
        require_master(auth)?;
        let Some(cloud) = self.cloud.as_ref().filter(|cloud| cloud.has_job(name)) else {
            return Err(OpError::parse(
                parlor_core::Code::ScriptFailed,
                "Invalid job.",
            ));
        };
        let now = serde_json::json!({"__type": "Date", "iso": parlor_core::value::now_iso()});
        let status = serde_json::json!({
            "jobName": name,
            "source": "api",
            "status": "running",
            "params": params,
            "startedAt": now,
            "ACL": {},
        });
        let planned = self
            .plan_create(
                &Auth::master(),
                "_JobStatus",
                status.as_object().unwrap_or(&Map::new()),
            )
            .await?;
        let created = self.commit_one(planned).await?;
        let job_id = created
            .body
            .get("objectId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        cloud.start_job(self, auth, name, params, &job_id)?;
        Ok(job_id)
    }

    /// Updates a job's `_JobStatus` (its `message`, or its end: `succeeded`/`failed`).
    pub async fn update_job_status(&self, job_id: &str, fields: Value) -> OpResult<()> {
        let body = match fields {
            Value::Object(body) => body,
            _ => Map::new(),
        };
        let planned = self
            .plan_update(&Auth::master(), "_JobStatus", job_id, &body)
            .await?;
        self.commit_one(planned).await?;
        Ok(())
    }

    /// `GET /cloud_code/jobs`: the schedules.
    pub async fn job_schedules(&self, auth: &Auth) -> OpResult<Vec<Value>> {
        require_master(auth)?;
        let request = FindRequest {
            where_json: json!({}),
            limit: Some(1000),
            ..FindRequest::default()
        };
        Ok(self.find(auth, SCHEDULES, request).await?.results)
    }

    /// `GET /cloud_code/jobs/data`: the jobs the code defines and those a schedule names.
    pub async fn jobs_data(&self, auth: &Auth) -> OpResult<Value> {
        let schedules = self.job_schedules(auth).await?;
        let in_use: Vec<Value> = schedules
            .iter()
            .filter_map(|schedule| schedule.get("jobName").cloned())
            .collect();
        let jobs = self
            .cloud
            .as_ref()
            .map(|cloud| cloud.job_names())
            .unwrap_or_default();
        Ok(json!({"in_use": in_use, "jobs": jobs}))
    }

    /// `POST /cloud_code/jobs` (`{job_schedule: {...}}`): a new schedule; its create answer.
    pub async fn create_job_schedule(
        &self,
        auth: &Auth,
        body: &Map<String, Value>,
    ) -> OpResult<super::WriteResponse> {
        require_master(auth)?;
        let schedule = self.checked_schedule(body)?;
        let planned = self.plan_create(auth, SCHEDULES, &schedule).await?;
        self.commit_one(planned).await
    }

    /// `PUT /cloud_code/jobs/:objectId`.
    pub async fn update_job_schedule(
        &self,
        auth: &Auth,
        object_id: &str,
        body: &Map<String, Value>,
    ) -> OpResult<super::WriteResponse> {
        require_master(auth)?;
        let schedule = self.checked_schedule(body)?;
        let planned = self
            .plan_update(auth, SCHEDULES, object_id, &schedule)
            .await?;
        self.commit_one(planned).await
    }

    /// `DELETE /cloud_code/jobs/:objectId`.
    pub async fn delete_job_schedule(&self, auth: &Auth, object_id: &str) -> OpResult<()> {
        require_master(auth)?;
        let planned = self.plan_delete(auth, SCHEDULES, object_id).await?;
        self.commit_one(planned).await?;
        Ok(())
    }

    /// The body's `job_schedule`, refused when it names a job the code does not define, with
    /// `startAfter` defaulting to now (Parse Server's rules).
    fn checked_schedule(&self, body: &Map<String, Value>) -> OpResult<Map<String, Value>> {
        let Some(Value::Object(schedule)) = body.get("job_schedule") else {
            return Err(OpError::parse(
                Code::InvalidJson,
                "job_schedule must be an object.",
            ));
        };
        if let Some(name) = schedule.get("jobName").and_then(Value::as_str)
            && !self.cloud.as_ref().is_some_and(|cloud| cloud.has_job(name))
        {
            // Parse Server answers 500 (code 1); a client's mistake is a 400 here.
            return Err(OpError::parse(
                Code::ScriptFailed,
                "Cannot Schedule a job that is not deployed",
            ));
        }
        let mut schedule = schedule.clone();
        schedule
            .entry("startAfter")
            .or_insert_with(|| parlor_core::value::now_iso().into());
        Ok(schedule)
    }
}

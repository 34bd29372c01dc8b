//! The store, timed: a [`Store`] that passes every call through and records how long reads
//! and writes took. Wrapped around the real store only when metrics are on.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use parlor_core::object::Object;
use parlor_core::query::pipeline::Aggregate;
use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;
use parlor_store::{
    ChangeSink, JsonRows, SearchHit, Store, StoreResult, StoreStats, Write, WriteOutcome,
};

use serde_json::{Map, Value};

use super::Metrics;

pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner, metrics })
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn load_schemas(&self) -> StoreResult<Vec<ClassSchema>> {
        self.inner.load_schemas().await
    }

    async fn create_class(&self, schema: &ClassSchema) -> StoreResult<()> {
        self.inner.create_class(schema).await
    }

    async fn update_class(&self, before: &ClassSchema, after: &ClassSchema) -> StoreResult<()> {
        self.inner.update_class(before, after).await
    }

    async fn drop_class(&self, class_name: &str) -> StoreResult<()> {
        self.inner.drop_class(class_name).await
    }

    async fn purge_class(&self, class_name: &str) -> StoreResult<()> {
        self.inner.purge_class(class_name).await
    }

    async fn find(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<Vec<Object>> {
        let started = Instant::now();
        let found = self.inner.find(schema, query).await;
        self.metrics.record_store("read", started.elapsed());
        found
    }

    async fn find_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<JsonRows> {
        let started = Instant::now();
        let found = self.inner.find_json(schema, query).await;
        self.metrics.record_store("read", started.elapsed());
        found
    }

    async fn count(&self, schema: &ClassSchema, filter: &Filter) -> StoreResult<u64> {
        let started = Instant::now();
        let counted = self.inner.count(schema, filter).await;
        self.metrics.record_store("read", started.elapsed());
        counted
    }

    async fn write(&self, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>> {
        let started = Instant::now();
        let written = self.inner.write(writes).await;
        self.metrics.record_store("write", started.elapsed());
        written
    }

    fn class_generation(&self, class_name: &str) -> u64 {
        self.inner.class_generation(class_name)
    }

    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.inner.set_change_sink(sink);
    }

    async fn search(
        &self,
        schema: &ClassSchema,
        field: &str,
        filter: &Filter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<SearchHit>> {
        let started = Instant::now();
        let hits = self.inner.search(schema, field, filter, query, limit).await;
        self.metrics.record_store("read", started.elapsed());
        hits
    }

    async fn explain(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<String> {
        self.inner.explain(schema, query).await
    }

    async fn explain_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<Value> {
        self.inner.explain_json(schema, query).await
    }

    async fn aggregate(
        &self,
        schema: &ClassSchema,
        pipeline: &Aggregate,
    ) -> StoreResult<Vec<Map<String, Value>>> {
        let started = Instant::now();
        let rows = self.inner.aggregate(schema, pipeline).await;
        self.metrics.record_store("read", started.elapsed());
        rows
    }

    async fn distinct(
        &self,
        schema: &ClassSchema,
        filter: &Filter,
        field: &str,
    ) -> StoreResult<Vec<Value>> {
        let started = Instant::now();
        let values = self.inner.distinct(schema, filter, field).await;
        self.metrics.record_store("read", started.elapsed());
        values
    }

    async fn put_file(&self, name: &str, content_type: &str, data: Vec<u8>) -> StoreResult<()> {
        self.inner.put_file(name, content_type, data).await
    }

    async fn get_file(&self, name: &str) -> StoreResult<Option<(String, Vec<u8>)>> {
        self.inner.get_file(name).await
    }

    async fn delete_file(&self, name: &str) -> StoreResult<bool> {
        self.inner.delete_file(name).await
    }

    async fn list_files(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<String>> {
        self.inner.list_files(after, limit).await
    }

    fn reserves_class_name(&self, class_name: &str) -> bool {
        self.inner.reserves_class_name(class_name)
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

//! Nested pointers in GraphQL are loaded in batches: a page of messages with their `sender` and
//! `session` (and the session's `owner`) costs one store query per class and level, however
//! many messages the page holds. Counted at the store, under the real operation layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use parlor_core::object::Object;
use parlor_core::query::{Filter, FindQuery};
use parlor_core::schema::ClassSchema;
use parlor_server::config::ServeOptions;
use parlor_server::graphql::{Caller, GraphQl, Limits};
use parlor_server::operation::{Auth, Operations};
use parlor_store::{ChangeSink, JsonRows, SearchHit, Store, StoreResult, Write, WriteOutcome};
use serde_json::{Value, json};

/// A store that counts the queries it answers.
struct Counting {
    inner: Arc<dyn Store>,
    finds: AtomicUsize,
}

#[async_trait]
impl Store for Counting {
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
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find(schema, query).await
    }
    async fn find_json(&self, schema: &ClassSchema, query: &FindQuery) -> StoreResult<JsonRows> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find_json(schema, query).await
    }
    async fn count(&self, schema: &ClassSchema, filter: &Filter) -> StoreResult<u64> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.count(schema, filter).await
    }
    async fn write(&self, writes: Vec<Write>) -> StoreResult<Vec<WriteOutcome>> {
        self.inner.write(writes).await
    }
    fn class_generation(&self, class_name: &str) -> u64 {
        self.inner.class_generation(class_name)
    }
    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.inner.set_change_sink(sink)
    }
    async fn search(
        &self,
        schema: &ClassSchema,
        field: &str,
        filter: &Filter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<SearchHit>> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.search(schema, field, filter, query, limit).await
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
        pipeline: &parlor_core::query::pipeline::Aggregate,
    ) -> StoreResult<Vec<serde_json::Map<String, Value>>> {
        self.inner.aggregate(schema, pipeline).await
    }
    async fn distinct(
        &self,
        schema: &ClassSchema,
        filter: &Filter,
        field: &str,
    ) -> StoreResult<Vec<Value>> {
        self.inner.distinct(schema, filter, field).await
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
    async fn close(&self) {
        self.inner.close().await
    }
}

async fn create(operations: &Operations, class_name: &str, body: Value) -> String {
    let planned = operations
        .plan_create(&Auth::master(), class_name, body.as_object().unwrap())
        .await
        .unwrap();
    let response = operations.commit_one(planned).await.unwrap();
    response.body["objectId"].as_str().unwrap().to_owned()
}

fn pointer(class_name: &str, object_id: &str) -> Value {
    json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
}

/// The store queries one GraphQL request makes, and its data.
async fn run(
    graphql: &GraphQl,
    counting: &Counting,
    auth: &Auth,
    query: &str,
    variables: Value,
) -> (usize, Value) {
    let built = graphql.schema().await.unwrap();
    let before = counting.finds.load(Ordering::SeqCst);
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables))
        .data(Caller::new(
            auth.clone(),
            "127.0.0.1".parse().unwrap(),
            false,
        ));
    let response = built.schema.execute(request).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let after = counting.finds.load(Ordering::SeqCst);
    (after - before, response.data.into_json().unwrap())
}

#[tokio::test]
async fn a_page_with_nested_pointers_costs_one_query_per_class_and_level() {
    if crate::common::skip_on_postgres("counts the SQLite store's queries") {
        return;
    }
    parlor_server::ai::provider::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let config = ServeOptions {
        database: Some(format!("sqlite://{}/p.db", dir.path().display())),
        app_id: Some("app".into()),
        master_key: Some("mk".into()),
        ..ServeOptions::default()
    }
    .resolve()
    .unwrap();
    let mut operations = parlor_server::open_operations(&config, "http://127.0.0.1/parse".into())
        .await
        .unwrap();
    let counting = Arc::new(Counting {
        inner: operations.store.clone(),
        finds: AtomicUsize::new(0),
    });
    operations.store = counting.clone();

    let owner = create(
        &operations,
        "_User",
        json!({"username": "olga", "password": "pw"}),
    )
    .await;
    let members: Vec<String> = {
        let mut members = Vec::new();
        for n in 0..5 {
            members.push(
                create(
                    &operations,
                    "_User",
                    json!({"username": format!("m{n}"), "password": "pw"}),
                )
                .await,
            );
        }
        members
    };
    let participants: Vec<Value> = members.iter().map(|id| pointer("_User", id)).collect();
    let session = create(
        &operations,
        "ChatSession",
        json!({"title": "T", "owner": pointer("_User", &owner), "participants": participants}),
    )
    .await;
    for n in 0..60 {
        let sender = &members[n % members.len()];
        create(
            &operations,
            "Message",
            json!({"session": pointer("ChatSession", &session), "sender": pointer("_User", sender), "content": format!("m{n}")}),
        )
        .await;
    }
    let graphql = GraphQl::new(
        operations.clone(),
        Arc::new(parlor_server::live::Hub::new(Default::default(), None)),
        Limits::default(),
    )
    .unwrap();
    let reader = Auth {
        user_id: Some(members[0].clone()),
        roles: operations.roles_of(&members[0]).await.unwrap(),
        ..Auth::default()
    };
    let history = r#"query($s: ID!, $n: Int) { messages(where: {session: {have: {objectId: {equalTo: $s}}}},
        order: [createdAt_DESC], first: $n) {
        edges { node { objectId content sender { username } session { title owner { username } } } } } }"#;
    let mut costs = Vec::new();
    for page in [5, 50] {
        let (queries, data) = run(
            &graphql,
            &counting,
            &reader,
            history,
            json!({"s": session, "n": page}),
        )
        .await;
        let edges = data["messages"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), page);
        assert!(
            edges
                .iter()
                .all(|edge| edge["node"]["sender"]["username"].is_string())
        );
        assert!(
            edges
                .iter()
                .all(|edge| edge["node"]["session"]["owner"]["username"] == "olga")
        );
        costs.push(queries);
    }
    // Messages (with the session subquery), their senders, their session, its owner.
    assert_eq!(costs[0], costs[1], "the cost grew with the page: {costs:?}");
    assert!(costs[1] <= 5, "{} store queries for one page", costs[1]);
}

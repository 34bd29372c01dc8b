//! What a query may cost before it runs: its nesting in the raw text (checked before the
//! parser sees it), then the depth, number of fields and aliases of its selections, and
//! introspection, which needs the master key (§12.1). The master key is exempt from the
//! selection limits, as in Parse Server.
//!
//! Failures are tagged with the `GRAPHQL_*` code the edge answers with HTTP 400 (403 for
//! introspection); nothing here decides an access rule on data.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, NextValidation,
    ResolveInfo,
};
use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, ValidationResult, Variables};

use super::values::Caller;

/// Configurable limits (`--graphql-max-depth`, `--graphql-max-fields`, `--graphql-max-aliases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection nesting; `None`: no limit.
    pub max_depth: Option<usize>,
    /// Most fields selected in one operation, fragments expanded.
    pub max_fields: Option<usize>,
    /// Most aliased fields in one operation.
    pub max_aliases: Option<usize>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: Some(20),
            max_fields: Some(500),
            max_aliases: Some(50),
        }
    }
}

/// Nesting of brackets in the query text beyond which it is refused unparsed: far above any
/// real query, far below what would exhaust the parser's stack.
const MAX_TEXT_NESTING: usize = 200;

/// The error codes the edge turns into HTTP statuses.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// An error with a string `code` and, when it is not 400, the HTTP status to answer.
pub fn coded(message: impl Into<String>, code: &str, status: Option<u16>) -> ServerError {
    let mut error = ServerError::new(message, None);
    tag(&mut error, code, status);
    error
}

fn tag(error: &mut ServerError, code: &str, status: Option<u16>) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", code);
    if let Some(status) = status {
        extensions.set("httpStatus", status);
    }
}

/// The deepest bracket nesting of a query's text, outside strings and comments.
pub fn text_nesting(query: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for next in chars.by_ref() {
                    match next {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[derive(Default)]
struct Cost {
    depth: usize,
    fields: usize,
    aliases: usize,
    introspection: bool,
}

struct Walk<'a> {
    fragments: &'a std::collections::HashMap<Name, Positioned<FragmentDefinition>>,
    cost: Cost,
    visiting: HashSet<&'a str>,
    /// Stops counting past the limits: a query with 10,000 aliases is refused after a few
    /// hundred are seen.
    budget: usize,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, depth: usize) {
        for selection in &set.items {
            if self.cost.fields > self.budget {
                return;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    self.cost.fields += 1;
                    if field.alias.is_some() {
                        self.cost.aliases += 1;
                    }
                    let name = field.name.node.as_str();
                    if name == "__schema" || (name == "__type" && !field.arguments.is_empty()) {
                        self.cost.introspection = true;
                    }
                    self.cost.depth = self.cost.depth.max(depth + 1);
                    self.selection_set(&field.selection_set.node, depth + 1);
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set.node, depth);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    // A fragment that spreads itself is invalid; validation says so later.
                    if !self.visiting.insert(name) {
                        continue;
                    }
                    if let Some(fragment) = self.fragments.get(name) {
                        self.selection_set(&fragment.node.selection_set.node, depth);
                    }
                    self.visiting.remove(name);
                }
            }
        }
    }
}

fn cost(document: &ExecutableDocument, budget: usize) -> Cost {
    let mut walk = Walk {
        fragments: &document.fragments,
        cost: Cost::default(),
        visiting: HashSet::new(),
        budget,
    };
    for (_, operation) in document.operations.iter() {
        walk.selection_set(&operation.node.selection_set.node, 0);
    }
    walk.cost
}

/// The extension that applies [`Limits`] and tags the errors of each stage.
pub struct Guard(pub Limits);

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension(self.0))
    }
}

struct GuardExtension(Limits);

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if text_nesting(query) > MAX_TEXT_NESTING {
            return Err(coded(
                format!("Syntax Error: the query nests more than {MAX_TEXT_NESTING} levels."),
                PARSE_FAILED,
                None,
            ));
        }
        let document = next.run(ctx, query, variables).await.map_err(|mut error| {
            tag(&mut error, PARSE_FAILED, None);
            error
        })?;
        let caller = ctx.data_opt::<Caller>();
        if caller.is_some_and(|caller| caller.read_only)
            && document.operations.iter().any(|(_, operation)| {
                operation.node.ty != async_graphql::parser::types::OperationType::Query
            })
        {
            return Err(coded(
                "Can only perform a query operation from a GET request.",
                "BAD_REQUEST",
                Some(405),
            ));
        }
        if let Some(caller) = caller
            && let Ok(mut roots) = caller.nullable_roots.lock()
        {
            for (_, operation) in document.operations.iter() {
                let mutation =
                    operation.node.ty == async_graphql::parser::types::OperationType::Mutation;
                for selection in &operation.node.selection_set.node.items {
                    if let Selection::Field(field) = &selection.node {
                        let nullable = mutation || field.node.name.node == "node";
                        roots.push((field.node.response_key().node.to_string(), nullable));
                    }
                }
            }
        }
        let master = caller.is_some_and(|caller| caller.auth.master);
        let limits = self.0;
        let budget = match (master, limits.max_fields) {
            (false, Some(max)) => max.saturating_add(1),
            // Even the master key's fragments cannot make the count run without end.
            _ => 1_000_000,
        };
        let cost = cost(&document, budget);
        // A required variable that is missing fails here, before anything runs, as a
        // variable of the wrong type fails validation.
        for (_, operation) in document.operations.iter() {
            for definition in &operation.node.variable_definitions {
                let definition = &definition.node;
                let name = definition.name.node.as_str();
                let given = variables
                    .get(name)
                    .is_some_and(|value| *value != async_graphql::Value::Null);
                if !definition.var_type.node.nullable
                    && definition.default_value.is_none()
                    && !given
                {
                    return Err(coded(
                        format!(
                            "Variable \"${name}\" of required type \"{}\" was not provided.",
                            definition.var_type.node
                        ),
                        BAD_USER_INPUT,
                        None,
                    ));
                }
            }
        }
        if master {
            return Ok(document);
        }
        if cost.introspection {
            return Err(coded(
                "Introspection is not allowed",
                "INTERNAL_SERVER_ERROR",
                Some(403),
            ));
        }
        if let Some(max) = limits.max_depth
            && cost.depth > max
        {
            return Err(coded(
                format!(
                    "GraphQL query depth of {} exceeds maximum allowed depth of {max}",
                    cost.depth
                ),
                VALIDATION_FAILED,
                None,
            ));
        }
        if let Some(max) = limits.max_fields
            && cost.fields > max
        {
            return Err(coded(
                format!(
                    "Number of GraphQL fields ({}) exceeds maximum allowed ({max})",
                    cost.fields
                ),
                VALIDATION_FAILED,
                None,
            ));
        }
        if let Some(max) = limits.max_aliases
            && cost.aliases > max
        {
            return Err(coded(
                format!(
                    "Number of GraphQL aliases ({}) exceeds maximum allowed ({max})",
                    cost.aliases
                ),
                VALIDATION_FAILED,
                None,
            ));
        }
        Ok(document)
    }

    /// Gives a resolver's error the path of its field (the dynamic executor leaves it out).
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<async_graphql::Value>> {
        let path = info.path_node;
        next.run(ctx, info).await.map_err(|mut error| {
            if error.path.is_empty() {
                error.path = path
                    .to_string_vec()
                    .into_iter()
                    .map(|segment| match segment.parse::<usize>() {
                        Ok(index) => async_graphql::PathSegment::Index(index),
                        Err(_) => async_graphql::PathSegment::Field(segment),
                    })
                    .collect();
            }
            error
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                let code = if error.message.starts_with("Variable")
                    || error.message.contains("variable")
                {
                    BAD_USER_INPUT
                } else {
                    VALIDATION_FAILED
                };
                tag(error, code, None);
            }
            errors
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_ignores_strings_and_comments() {
        assert_eq!(text_nesting("{ a { b } }"), 2);
        assert_eq!(text_nesting("{ a(x: \"{{{{\") # {{{{\n }"), 2);
        assert_eq!(text_nesting(&"{a".repeat(500)), 500);
    }

    #[test]
    fn cost_counts_through_fragments_and_stops_early() {
        let document = async_graphql::parser::parse_query(
            "query { a: x { y } b: x { ...F } } fragment F on X { z { w } }",
        )
        .unwrap_or_else(|_| panic!("parses"));
        let cost = cost(&document, usize::MAX);
        assert_eq!((cost.depth, cost.fields, cost.aliases), (3, 5, 2));
        let cycle =
            async_graphql::parser::parse_query("{ a { ...F } } fragment F on A { b { ...F } }")
                .unwrap_or_else(|_| panic!("parses"));
        assert!(cost_terminates(&cycle));
    }

    fn cost_terminates(document: &ExecutableDocument) -> bool {
        cost(document, usize::MAX).fields < 100
    }
}

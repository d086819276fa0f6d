//! The two clients of a run (REST and bulk, which may carry different SMART credentials) over
//! one connection budget. A batch of groups shares one `Clients`: one token, one
//! CapabilityStatement, one budget for every group.

use super::{Budget, FhirClient};
use crate::hydrate::Task;
use crate::resources::ResourceType;

#[derive(Clone)]
pub struct Clients {
    /// Searches, reference downloads, `single`.
    pub rest: FhirClient,
    /// Bulk kickoff/poll/download/delete and server detection in `export`.
    pub bulk: FhirClient,
    /// The one connection budget of the process (both clients draw from it).
    pub budget: Budget,
}

impl Clients {
    /// Name the types this run reads — the searched or exported `types` and what the
    /// hydration `tasks` download — so the SMART token asks for exactly those scopes.
    pub fn read_scope(&self, types: &[ResourceType], tasks: &[&Task]) {
        let mut scope: Vec<ResourceType> = Vec::new();
        let wanted = types
            .iter()
            .copied()
            .chain(tasks.iter().map(|t| t.output))
            // Note inlining reads the Binaries behind attachments.
            .chain(
                tasks
                    .iter()
                    .any(|t| matches!(t.action, crate::hydrate::Action::Inline))
                    .then_some(ResourceType::Binary),
            );
        for t in wanted {
            if ResourceType::SCOPE_TYPES.contains(&t) && !scope.contains(&t) {
                scope.push(t);
            }
        }
        if scope.is_empty() {
            return;
        }
        scope.sort_by_key(|t| ResourceType::SCOPE_TYPES.iter().position(|s| s == t));
        self.rest.set_scope_types(&scope);
        self.bulk.set_scope_types(&scope);
    }
}

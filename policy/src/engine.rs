//! One policy revision over one cluster: loaded policies compiled, identities allocated, the
//! cluster state built. The agent keeps one `Engine` and rebuilds it on every change; `trace`
//! and the offline CLI use it too.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cluster::{ClusterState, LearnedNames};
use crate::compile::{compile, CompiledPolicies};
use crate::identity::Allocator;
use crate::load::LoadedPolicy;
use crate::resolve::{EndpointPolicy, ResolveOptions, Resolver};
use crate::topology::Topology;

/// Compiled policies and the cluster state they resolve against.
pub struct Engine {
    /// The topology.
    pub topology: Topology,
    /// Policies as loaded.
    pub policies: Vec<LoadedPolicy>,
    /// Compiled rules.
    pub compiled: CompiledPolicies,
    /// Identities (kept across rebuilds by the caller for stable numbers).
    pub alloc: Allocator,
    /// Endpoints and ipcache.
    pub state: ClusterState,
    /// Resolution options.
    pub opts: ResolveOptions,
}

impl Engine {
    /// Builds the engine. Pass the previous allocator to keep identity numbers stable.
    pub fn new(
        topology: Topology,
        policies: Vec<LoadedPolicy>,
        learned: &LearnedNames,
        mut alloc: Allocator,
        opts: ResolveOptions,
    ) -> Engine {
        let compiled = compile(&policies, &topology);
        let state = ClusterState::build(&topology, &compiled.inputs, learned, &mut alloc);
        Engine {
            topology,
            policies,
            compiled,
            alloc,
            state,
            opts,
        }
    }

    /// A resolver over this revision.
    pub fn resolver(&self) -> Resolver<'_> {
        Resolver::new(&self.compiled, &self.state, &self.alloc, self.opts.clone())
    }

    /// Policies of the endpoints on the agent's node.
    pub fn local_policies(&self) -> BTreeMap<String, Arc<EndpointPolicy>> {
        self.resolver().local_endpoints()
    }
}

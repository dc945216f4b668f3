//! Cluster mode: hash slots and the shard map (Redis Cluster's protocol on the outside).
//!
//! A layer between the command layer and the engine: it knows keys only as bytes to hash,
//! and nodes only as ids and addresses. `slot` maps keys to slots; `topology` holds this
//! node's id and the shard map and persists both in the cluster config file. Which keys a
//! command names is the command table's business (`commands::keyspec`), and what a
//! redirection looks like on the wire is `core::error`'s. `raft` replicates a shard's log (the
//! replication half, a later issue); the static shard map does not use it yet.

pub mod peer;
pub mod raft;
pub mod slot;
pub mod topology;

use std::path::PathBuf;

use parking_lot::RwLock;

pub use topology::{NodeId, ShardMap, SlotOwner, SlotState, Topology, TopologyError};

/// The cluster state of a node started with `cluster-enabled yes`.
#[derive(Debug)]
pub struct Cluster {
    /// Id and map; read on every keyed command, written when a new map arrives.
    pub topology: RwLock<Topology>,
    /// The cluster config file.
    path: PathBuf,
}

impl Cluster {
    /// Opens (or creates) the cluster config file at `path`.
    pub fn open(path: PathBuf) -> Result<Cluster, TopologyError> {
        let topology = Topology::open(&path)?;
        Ok(Cluster {
            topology: RwLock::new(topology),
            path,
        })
    }

    /// Checks `map`, persists it, then serves it. Under the write lock throughout, so two
    /// concurrent SETTOPOLOGYs cannot persist one map and serve the other.
    pub fn set_map(&self, map: ShardMap) -> Result<(), TopologyError> {
        let mut t = self.topology.write();
        t.check(&map)?;
        let next = t.successor(map);
        next.save(&self.path)?;
        *t = next;
        Ok(())
    }

    /// Opens or closes `slot` (MIGRATING / IMPORTING / stable), persisting the change before
    /// it is served, under the write lock as [`Cluster::set_map`].
    pub fn set_slot_state(&self, slot: u16, state: Option<SlotState>) -> Result<(), TopologyError> {
        let mut t = self.topology.write();
        let mut next = t.clone();
        next.set_slot_state(slot, state)?;
        next.save(&self.path)?;
        *t = next;
        Ok(())
    }
}

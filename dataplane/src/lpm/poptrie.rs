//! Poptrie: a 64-ary trie whose nodes keep their children and leaves
//! packed, found by counting bits (Asai and Ohara, SIGCOMM 2015).
//!
//! - **Direct pointing.** The top 18 bits of a key index a table of 2^18
//!   entries (1 MiB): each is a leaf (the value of every key under it) or
//!   the index of a node.
//! - **Nodes.** A node looks at the next 6 bits of the key, `v`. Bit `v` of
//!   `vector` says whether slot `v` is a node; the nodes among the 64 slots
//!   sit side by side from `base1`, so the child is at `base1 +
//!   popcount(vector & bits 0..=v) - 1`. Leaves are compressed: `leafvec`
//!   marks each slot where the value changes, and the slot's value is at
//!   `base0 + popcount(leafvec & bits 0..=v) - 1`.
//! - **Updates.** A change recompiles only what it covers: for a prefix of
//!   18 bits or more, the node its last bits fall in (the nodes above it
//!   stay, and so do its children outside the change); for a shorter one,
//!   the direct entries of its range. A batch of changes marks the direct
//!   entries it touched and compiles each once, at its end. Freed blocks go
//!   to free lists by size, and the whole structure is recompiled when more
//!   than half of it is free.
//!
//! The routes themselves are kept in a [`Rib`], which the structure is
//! compiled from.

use super::rib::{Rib, NONE};
use super::Key;

/// A direct entry that is a leaf: the value in its low 16 bits.
const LEAF: u32 = 1 << 31;
/// No route, as leaves and direct entries hold it.
const NO_ROUTE: u32 = 0xffff;
/// The largest value a route may carry.
pub const MAX_VALUE: u32 = NO_ROUTE - 1;
/// Keys whose direct entries a batch loads at once.
const GROUP: usize = 16;
/// Slots of a node: 6 bits of the key.
const STRIDE: u32 = 6;
const FANOUT: usize = 1 << STRIDE;

/// Why a route change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LpmError {
    #[error("prefix length {0} is over {1}")]
    BadLength(u8, u32),
    #[error("value {0} is over {MAX_VALUE}")]
    BadValue(u32),
    #[error("the table is full ({0} routes; raise limits.max_routes)")]
    Full(usize),
}

#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct Node {
    /// Bit v: slot v is a node.
    vector: u64,
    /// Bit v: slot v is a leaf whose value differs from the leaf before it.
    leafvec: u64,
    /// First leaf of this node's slots, in `leaves`.
    base0: u32,
    /// First child node, in `nodes`.
    base1: u32,
}

/// What one slot of a node being compiled becomes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Leaf(u32),
    /// A node for the routes under RIB node `.0`, the longest route above
    /// (or on) it being `.1`.
    Node(u32, u32),
}

/// Routes (prefix, length) -> value for keys `K`, with lookups by longest
/// prefix.
#[derive(Clone)]
pub struct Poptrie<K: Key> {
    rib: Rib<K>,
    direct: Box<[u32]>,
    nodes: Vec<Node>,
    /// 16 bits a leaf, as in the paper: the leaves are most of the
    /// structure, and half as many bytes keep twice as many in cache.
    leaves: Vec<u16>,
    /// Free blocks by size (index: the size, 1 to 64).
    free_nodes: Vec<Vec<u32>>,
    free_leaves: Vec<Vec<u32>>,
    used_nodes: usize,
    used_leaves: usize,
    max_routes: usize,
    /// Open batches ([`Poptrie::begin_batch`]); while any is open, changes
    /// go to the routes and to `dirty`, and are compiled at the end.
    batches: u32,
    /// The direct entries that changes in the open batch touched, a bit
    /// each, to compile when it ends (empty outside a batch).
    dirty: Vec<u64>,
}

impl<K: Key> Default for Poptrie<K> {
    fn default() -> Self {
        Poptrie::new()
    }
}

impl<K: Key> Poptrie<K> {
    /// An empty table taking at most `usize::MAX` routes.
    pub fn new() -> Poptrie<K> {
        Poptrie::with_max_routes(usize::MAX)
    }

    /// An empty table taking at most `max_routes` routes.
    pub fn with_max_routes(max_routes: usize) -> Poptrie<K> {
        Poptrie {
            rib: Rib::new(),
            direct: vec![LEAF | NO_ROUTE; 1 << K::DIRECT_BITS].into_boxed_slice(),
            nodes: Vec::new(),
            leaves: Vec::new(),
            free_nodes: vec![Vec::new(); FANOUT + 1],
            free_leaves: vec![Vec::new(); FANOUT + 1],
            used_nodes: 0,
            used_leaves: 0,
            max_routes,
            batches: 0,
            dirty: Vec::new(),
        }
    }

    /// Most routes the table takes.
    pub fn max_routes(&self) -> usize {
        self.max_routes
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.rib.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rib.is_empty()
    }

    /// The routes.
    pub fn rib(&self) -> &Rib<K> {
        &self.rib
    }

    /// Bytes of the lookup structure: the direct table, nodes and leaves.
    pub fn lookup_bytes(&self) -> usize {
        self.direct.len() * 4
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.leaves.capacity() * 2
    }

    /// Bytes in all: the lookup structure and the routes it is made from.
    pub fn memory_bytes(&self) -> usize {
        let free: usize = self
            .free_nodes
            .iter()
            .chain(&self.free_leaves)
            .map(|f| f.capacity() * 4)
            .sum();
        self.lookup_bytes() + self.rib.memory_bytes() + free
    }

    /// The value of the longest prefix that matches `key`.
    #[inline]
    pub fn lookup(&self, key: K) -> Option<u32> {
        let v = self.lookup_raw(key);
        (v != NO_ROUTE).then_some(v)
    }

    /// Looks up a batch: `out[i]` is the value for `keys[i]`, or `u32::MAX`.
    /// The direct entries of a group of keys are loaded first, all at
    /// once, so that their cache misses overlap, then each key goes down
    /// its nodes.
    pub fn lookup_batch(&self, keys: &[K], out: &mut [u32]) {
        for (keys, out) in keys.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let mut direct = [0u32; GROUP];
            for (d, k) in direct.iter_mut().zip(keys) {
                *d = self.direct[k.direct()];
            }
            for ((o, &d), &k) in out.iter_mut().zip(&direct).zip(keys) {
                let v = if d & LEAF != 0 {
                    d & !LEAF
                } else {
                    self.walk(d, k)
                };
                *o = if v == NO_ROUTE { u32::MAX } else { v };
            }
        }
    }

    #[inline]
    fn lookup_raw(&self, key: K) -> u32 {
        let d = self.direct[key.direct()];
        if d & LEAF != 0 {
            return d & !LEAF;
        }
        self.walk(d, key)
    }

    /// The value for `key` from node `at` (its direct entry) down.
    #[inline]
    fn walk(&self, at: u32, key: K) -> u32 {
        let mut node = self.nodes[at as usize];
        let mut off = K::DIRECT_BITS;
        loop {
            let v = key.chunk(off);
            let upto = u64::MAX >> (63 - v);
            if (node.vector >> v) & 1 != 0 {
                let i = node.base1 + (node.vector & upto).count_ones() - 1;
                node = self.nodes[i as usize];
                off += STRIDE;
            } else {
                let i = node.base0 + (node.leafvec & upto).count_ones() - 1;
                return u32::from(self.leaves[i as usize]);
            }
        }
    }

    /// The value of exactly `key/len`.
    pub fn get(&self, key: K, len: u8) -> Option<u32> {
        self.rib.get(key.masked(len), len)
    }

    /// The route that matches `key`: (prefix, length, value).
    pub fn matching(&self, key: K) -> Option<(K, u8, u32)> {
        let (len, v) = self.rib.lookup(key)?;
        Some((key.masked(len), len, v))
    }

    /// Adds or replaces `key/len -> value` (host bits of `key` ignored);
    /// the value it replaced, if any.
    pub fn insert(&mut self, key: K, len: u8, value: u32) -> Result<Option<u32>, LpmError> {
        if u32::from(len) > K::BITS {
            return Err(LpmError::BadLength(len, K::BITS));
        }
        if value > MAX_VALUE {
            return Err(LpmError::BadValue(value));
        }
        let key = key.masked(len);
        if self.rib.len() >= self.max_routes && self.rib.get(key, len).is_none() {
            return Err(LpmError::Full(self.max_routes));
        }
        let old = self.rib.insert(key, len, value);
        if old != Some(value) {
            self.changed(key, len);
        }
        Ok(old)
    }

    /// Removes `key/len`; its value, if it was there. Keys it covered fall
    /// back to the next shorter route that covers them.
    pub fn remove(&mut self, key: K, len: u8) -> Option<u32> {
        if u32::from(len) > K::BITS {
            return None;
        }
        let key = key.masked(len);
        let old = self.rib.remove(key, len)?;
        self.changed(key, len);
        Some(old)
    }

    /// Starts a batch of changes: until it ends ([`Poptrie::end_batch`]),
    /// changes go to the routes only (`get` and `matching` see them,
    /// lookups do not), and the end compiles each region they touched
    /// once. Many changes under one direct entry, as a table load or a
    /// config file makes, then cost one compile instead of one each.
    /// Batches nest.
    pub fn begin_batch(&mut self) {
        self.batches += 1;
    }

    /// Ends a batch; the last one to end compiles what changed in them.
    pub fn end_batch(&mut self) {
        debug_assert!(self.batches > 0, "end_batch without begin_batch");
        self.batches = self.batches.saturating_sub(1);
        if self.batches > 0 || self.dirty.is_empty() {
            return;
        }
        let d = K::DIRECT_BITS;
        let dirty = std::mem::take(&mut self.dirty);
        for (w, &word) in dirty.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let (n, best) = self.rib.descend(K::from_direct(slot), d);
                self.fill_direct(n, d, slot, best);
            }
        }
        self.compact();
        // A batch may grow the arrays by doubling: give back what a quarter
        // more than their length leaves over, so a table loaded in batches
        // takes what it needs (a copy on the control path, once).
        if self.nodes.capacity() > self.nodes.len() + self.nodes.len() / 4 + 1024 {
            self.nodes
                .shrink_to(self.nodes.len() + self.nodes.len() / 8);
        }
        if self.leaves.capacity() > self.leaves.len() + self.leaves.len() / 4 + 4096 {
            self.leaves
                .shrink_to(self.leaves.len() + self.leaves.len() / 8);
        }
    }

    /// Whether a batch is open: lookups do not see its changes yet.
    pub fn in_batch(&self) -> bool {
        self.batches > 0
    }

    /// Compiles the change to `key/len` now, or at the end of the batch.
    fn changed(&mut self, key: K, len: u8) {
        if self.batches > 0 {
            // The aligned block of direct entries it covers.
            let d = K::DIRECT_BITS;
            let depth = u32::from(len).min(d);
            let lo = key.masked(depth as u8).direct();
            if self.dirty.is_empty() {
                self.dirty = vec![0; (1 << d) / 64];
            }
            for slot in lo..lo + (1 << (d - depth)) {
                self.dirty[slot / 64] |= 1 << (slot % 64);
            }
        } else {
            self.update(key, len);
            self.compact();
        }
    }

    /// Recompiles the part of the structure that `key/len` covers.
    fn update(&mut self, key: K, len: u8) {
        let d = K::DIRECT_BITS;
        let depth = u32::from(len).min(d);
        let (n, best) = self.rib.descend(key, depth);
        let slot = key.masked(depth as u8).direct();
        let old = self.direct[slot];
        match n {
            // Under one direct entry that stays a node: only the nodes on
            // the prefix's path change, down to the one its last bits fall in.
            Some(n) if depth == d && old & LEAF == 0 && self.rib.has_children(n) => {
                self.update_node(old, n, d, best, key, len)
            }
            _ => self.fill_direct(n, depth, slot, best),
        }
    }

    /// Free blocks reused by size can pile up: starts over when more than
    /// half of the structure is free.
    fn compact(&mut self) {
        if self.nodes.len() > 2 * self.used_nodes + 4096
            || self.leaves.len() > 2 * self.used_leaves + 16384
        {
            self.recompile();
        }
    }

    /// Node `at`, for the routes below RIB node `n` (at `depth` bits, the
    /// longest route on or above it `best`), after a change to `key/len`:
    /// recompiled if the change falls among its own slots or turns one of
    /// them from leaf to node or back, else left as it is and its child on
    /// the path updated.
    fn update_node(&mut self, at: u32, n: u32, depth: u32, best: u32, key: K, len: u8) {
        let node = self.nodes[at as usize];
        if u32::from(len) >= depth + STRIDE {
            let v = key.chunk(depth);
            let (c, below) = self.rib.descend_from(n, key, depth, STRIDE, best);
            if let Some(c) = c.filter(|&c| (node.vector >> v) & 1 != 0 && self.rib.has_children(c))
            {
                let upto = u64::MAX >> (63 - v);
                let child = node.base1 + (node.vector & upto).count_ones() - 1;
                return self.update_node(child, c, depth + STRIDE, below, key, len);
            }
        }
        // The slots the change falls in (its prefix ends in this node).
        let v = key.chunk(depth);
        let span = 1u32 << (depth + STRIDE).saturating_sub(u32::from(len)).min(STRIDE);
        let lo = v & !(span as usize - 1);
        let span_mask = (u64::MAX >> (64 - span)) << lo;
        let node = self.recompile_node(node, n, best, span_mask);
        self.nodes[at as usize] = node;
    }

    /// Compiles the whole structure anew from the routes.
    pub fn recompile(&mut self) {
        self.nodes.clear();
        self.leaves.clear();
        self.free_nodes.iter_mut().for_each(Vec::clear);
        self.free_leaves.iter_mut().for_each(Vec::clear);
        self.used_nodes = 0;
        self.used_leaves = 0;
        self.direct.fill(LEAF | NO_ROUTE);
        let root = self.rib.root();
        let best = self.rib.value(root);
        self.fill_direct(Some(root), 0, 0, best);
    }

    /// Sets the direct entries under RIB node `n` (at `depth` bits, on the
    /// path to direct entry `slot`; `None` if the RIB has no node there),
    /// the longest route on or above it being `best`.
    fn fill_direct(&mut self, n: Option<u32>, depth: u32, slot: usize, best: u32) {
        let d = K::DIRECT_BITS;
        match n {
            Some(n) if depth == d => self.set_direct(slot, Some(n), best),
            Some(n) if self.rib.has_children(n) => {
                for b in 0..2 {
                    let c = self.rib.child(n, b);
                    let best = c.map_or(best, |c| self.best(c, best));
                    self.fill_direct(c, depth + 1, slot | b << (d - depth - 1), best);
                }
            }
            _ => {
                for s in slot..slot + (1 << (d - depth)) {
                    self.set_direct(s, None, best);
                }
            }
        }
    }

    /// The value of RIB node `n`, else `best`.
    #[inline]
    fn best(&self, n: u32, best: u32) -> u32 {
        match self.rib.value(n) {
            NONE => best,
            v => v,
        }
    }

    /// Direct entry `slot`: a node for what is below RIB node `n`, or a
    /// leaf of `best`.
    fn set_direct(&mut self, slot: usize, n: Option<u32>, best: u32) {
        let old = self.direct[slot];
        if old & LEAF == 0 {
            let node = self.nodes[old as usize];
            self.free_below(node);
            self.free_node_block(old, 1);
        }
        self.direct[slot] = match n {
            Some(n) if self.rib.has_children(n) => {
                let at = self.alloc_nodes(1);
                let node = self.compile(n, best);
                self.nodes[at as usize] = node;
                at
            }
            _ => LEAF | leaf_value(best),
        };
    }

    /// The node for the routes below RIB node `n`, the longest route on or
    /// above it being `best`; its children and leaves
    /// are placed, the node itself is for the caller to place.
    fn compile(&mut self, n: u32, best: u32) -> Node {
        self.compile_keeping(n, best, None)
    }

    /// Node `old` anew, for the routes below RIB node `n` (the longest
    /// route on or above it `best`) after a change to the slots of bits
    /// `changed`: its children in other slots are kept as they are (moved,
    /// not compiled again), the rest are compiled, and what it no longer
    /// uses is freed.
    fn recompile_node(&mut self, old: Node, n: u32, best: u32, changed: u64) -> Node {
        self.compile_keeping(n, best, Some((old, changed)))
    }

    /// [`Poptrie::compile`], or with `Some((old, changed))`
    /// [`Poptrie::recompile_node`].
    fn compile_keeping(&mut self, n: u32, best: u32, old: Option<(Node, u64)>) -> Node {
        let mut slots = [Slot::Leaf(NO_ROUTE); FANOUT];
        self.expand(Some(n), 0, 0, best, &mut slots);
        let (mut vector, mut leafvec) = (0u64, 0u64);
        let mut values = [0u16; FANOUT];
        let mut nvalues = 0;
        let mut last = None;
        for (v, s) in slots.iter().enumerate() {
            match *s {
                Slot::Node(..) => vector |= 1 << v,
                Slot::Leaf(value) => {
                    if last != Some(value) {
                        leafvec |= 1 << v;
                        values[nvalues] = value as u16;
                        nvalues += 1;
                        last = Some(value);
                    }
                }
            }
        }
        let kids = vector.count_ones() as usize;
        let Some((old, changed)) = old else {
            let base0 = self.alloc_leaves(nvalues);
            self.leaves[base0 as usize..][..nvalues].copy_from_slice(&values[..nvalues]);
            let base1 = self.alloc_nodes(kids);
            let mut k = base1 as usize;
            for s in slots {
                if let Slot::Node(c, best) = s {
                    let child = self.compile(c, best);
                    self.nodes[k] = child;
                    k += 1;
                }
            }
            return Node {
                vector,
                leafvec,
                base0,
                base1,
            };
        };
        // Children that stay (a node before and after, outside the change)
        // are moved as they are; the others are compiled, and the old ones
        // not kept freed with all below them. Everything new is compiled
        // (or copied out) before anything old is freed, so a block freed
        // here and taken again at once holds nothing still needed.
        let keep = old.vector & vector & !changed;
        let mut children = [Node::default(); FANOUT];
        let mut k = 0;
        for (v, s) in slots.iter().enumerate() {
            if let Slot::Node(c, best) = *s {
                children[k] = if (keep >> v) & 1 != 0 {
                    self.nodes[child_index(&old, v) as usize]
                } else {
                    self.compile(c, best)
                };
                k += 1;
            }
        }
        let mut gone = old.vector & !keep;
        while gone != 0 {
            let v = gone.trailing_zeros() as usize;
            gone &= gone - 1;
            self.free_below(self.nodes[child_index(&old, v) as usize]);
        }
        self.free_node_block(old.base1, old.vector.count_ones() as usize);
        self.free_leaf_block(old);
        let base0 = self.alloc_leaves(nvalues);
        self.leaves[base0 as usize..][..nvalues].copy_from_slice(&values[..nvalues]);
        let base1 = self.alloc_nodes(kids);
        self.nodes[base1 as usize..][..kids].copy_from_slice(&children[..kids]);
        Node {
            vector,
            leafvec,
            base0,
            base1,
        }
    }

    /// Fills the slots under RIB node `n` (`lvl` bits below the node being
    /// compiled, at slot prefix `idx`), the longest route on or above it
    /// being `best`.
    fn expand(&self, n: Option<u32>, lvl: u32, idx: usize, best: u32, slots: &mut [Slot]) {
        match n {
            Some(n) if lvl == STRIDE => {
                slots[idx] = if self.rib.has_children(n) {
                    Slot::Node(n, best)
                } else {
                    Slot::Leaf(leaf_value(best))
                };
            }
            Some(n) if self.rib.has_children(n) => {
                for b in 0..2 {
                    let c = self.rib.child(n, b);
                    let best = c.map_or(best, |c| self.best(c, best));
                    self.expand(c, lvl + 1, idx << 1 | b, best, slots);
                }
            }
            _ => {
                let span = 1 << (STRIDE - lvl);
                slots[idx * span..(idx + 1) * span].fill(Slot::Leaf(leaf_value(best)));
            }
        }
    }

    /// Frees the blocks below `node` (its children, recursively, and its
    /// leaves).
    fn free_below(&mut self, node: Node) {
        let kids = node.vector.count_ones();
        for i in 0..kids {
            let child = self.nodes[(node.base1 + i) as usize];
            self.free_below(child);
        }
        self.free_node_block(node.base1, kids as usize);
        self.free_leaf_block(node);
    }

    /// Frees the leaves of `node`.
    fn free_leaf_block(&mut self, node: Node) {
        let n = node.leafvec.count_ones() as usize;
        if n > 0 {
            self.free_leaves[n].push(node.base0);
            self.used_leaves -= n;
        }
    }

    fn free_node_block(&mut self, at: u32, n: usize) {
        if n > 0 {
            self.free_nodes[n].push(at);
            self.used_nodes -= n;
        }
    }

    fn alloc_nodes(&mut self, n: usize) -> u32 {
        if n == 0 {
            return 0;
        }
        self.used_nodes += n;
        match self.free_nodes[n].pop() {
            Some(at) => at,
            None => {
                let at = self.nodes.len();
                self.nodes.resize(at + n, Node::default());
                at as u32
            }
        }
    }

    fn alloc_leaves(&mut self, n: usize) -> u32 {
        if n == 0 {
            return 0;
        }
        self.used_leaves += n;
        match self.free_leaves[n].pop() {
            Some(at) => at,
            None => {
                let at = self.leaves.len();
                self.leaves.resize(at + n, NO_ROUTE as u16);
                at as u32
            }
        }
    }
}

/// Where the child in slot `v` of `node` is (slot `v` must be a node).
#[inline]
fn child_index(node: &Node, v: usize) -> u32 {
    node.base1 + (node.vector & (u64::MAX >> (63 - v))).count_ones() - 1
}

/// A RIB value as a leaf holds it.
#[inline]
fn leaf_value(v: u32) -> u32 {
    if v == NONE {
        NO_ROUTE
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small xorshift, so the tests are the same every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// The longest of `routes` that matches `key`, by scanning them all.
    fn scan<K: Key>(routes: &std::collections::HashMap<(K, u8), u32>, key: K) -> Option<u32> {
        routes
            .iter()
            .filter(|(&(p, l), _)| key.masked(l) == p)
            .max_by_key(|(&(_, l), _)| l)
            .map(|(_, &v)| v)
    }

    /// Random tables of clustered, overlapping prefixes, changed route by
    /// route: after every batch of changes, lookups agree with the binary
    /// trie and with a scan of the routes.
    fn agrees_with_the_references<K: Key>(make: impl Fn(u64) -> K, lengths: &[u8], seed: u64) {
        let mut rng = Rng(seed);
        let mut t = Poptrie::<K>::new();
        let mut routes = std::collections::HashMap::new();
        for round in 0..30 {
            // A round in three is one batch, in two nested ones.
            let batches = usize::from(round % 3 == 1) * (1 + round % 2);
            (0..batches).for_each(|_| t.begin_batch());
            for _ in 0..50 {
                let len = lengths[(rng.next() % lengths.len() as u64) as usize];
                let key = make(rng.next()).masked(len);
                if rng.next() % 4 == 0 && !routes.is_empty() {
                    let &(k, l) = routes
                        .keys()
                        .nth((rng.next() % routes.len() as u64) as usize)
                        .unwrap();
                    assert_eq!(t.remove(k, l), routes.remove(&(k, l)));
                } else {
                    let v = (rng.next() % 1000) as u32;
                    assert_eq!(t.insert(key, len, v).unwrap(), routes.insert((key, len), v));
                }
            }
            (0..batches).for_each(|_| t.end_batch());
            assert!(!t.in_batch());
            if round == 15 {
                t.recompile();
            }
            assert_eq!(t.len(), routes.len());
            let mut keys: Vec<K> = (0..200).map(|_| make(rng.next())).collect();
            // And the edges of every route.
            keys.extend(routes.keys().map(|&(k, _)| k));
            let mut out = vec![0; keys.len()];
            t.lookup_batch(&keys, &mut out);
            for (i, &k) in keys.iter().enumerate() {
                let want = scan(&routes, k);
                assert_eq!(t.lookup(k), want, "{k:?} in round {round}");
                assert_eq!(t.rib.lookup(k).map(|(_, v)| v), want, "the trie, {k:?}");
                assert_eq!(out[i], want.unwrap_or(u32::MAX));
            }
        }
    }

    #[test]
    fn ipv4_agrees_with_a_binary_trie_and_a_scan() {
        // Clustered in 10.0.0.0/12 (some direct entries hold many routes),
        // with a few anywhere.
        let make = |r: u64| {
            if r % 8 == 0 {
                (r >> 8) as u32
            } else {
                0x0a00_0000 | ((r >> 8) as u32 & 0x000f_ffff)
            }
        };
        let lengths = [
            0, 1, 5, 8, 12, 16, 17, 18, 19, 20, 22, 24, 25, 28, 30, 31, 32,
        ];
        for seed in [1, 2, 3] {
            agrees_with_the_references::<u32>(
                make,
                &lengths,
                0x9e37_79b9_7f4a_7c15u64.wrapping_mul(seed),
            );
        }
    }

    #[test]
    fn each_change_in_a_dense_region_keeps_every_address_right() {
        // All routes in 10.0.0.0/20 (one direct entry, nodes three deep
        // whose children a change keeps or compiles), every address of it
        // checked after every change.
        let mut rng = Rng(0x51ed_270b_1a3c_9d47);
        let mut t = Poptrie::<u32>::new();
        let mut routes = std::collections::HashMap::new();
        let lengths = [18u8, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32];
        for _ in 0..400 {
            let len = lengths[(rng.next() % lengths.len() as u64) as usize];
            let key = (0x0a00_0000 | (rng.next() as u32 & 0xfff)).masked(len);
            if rng.next() % 3 == 0 && !routes.is_empty() {
                let &(k, l) = routes
                    .keys()
                    .nth((rng.next() % routes.len() as u64) as usize)
                    .unwrap();
                assert_eq!(t.remove(k, l), routes.remove(&(k, l)));
            } else {
                let v = (rng.next() % 50) as u32;
                assert_eq!(t.insert(key, len, v).unwrap(), routes.insert((key, len), v));
            }
            for a in 0x0a00_0000..0x0a00_1000u32 {
                assert_eq!(t.lookup(a), scan(&routes, a), "{a:#x}");
            }
        }
    }

    #[test]
    fn ipv6_agrees_with_a_binary_trie_and_a_scan() {
        // Clustered in 2001:db8::/32, with a few anywhere.
        let make = |r: u64| {
            let r2 = r.rotate_left(29) ^ 0x5851_f42d_4c95_7f2d;
            let low = (u128::from(r) << 64 | u128::from(r2)) >> 32;
            if r % 8 == 0 {
                u128::from(r) << 64 | u128::from(r2)
            } else {
                0x2001_0db8 << 96 | low
            }
        };
        let lengths = [
            0, 3, 16, 17, 18, 19, 24, 32, 33, 40, 44, 48, 56, 60, 64, 80, 96, 127, 128,
        ];
        for seed in [4, 5] {
            agrees_with_the_references::<u128>(
                make,
                &lengths,
                0x2545_f491_4f6c_dd1du64.wrapping_mul(seed),
            );
        }
    }

    #[test]
    fn freed_blocks_are_reused_and_a_table_emptied_is_empty() {
        let mut t = Poptrie::<u32>::new();
        for i in 0..1000u32 {
            t.insert(0x0a00_0000 | i << 8, 24, i).unwrap();
            t.insert(0x0a00_0000 | i << 8 | 0x80, 25, i + 1).unwrap();
        }
        let (nodes, leaves) = (t.nodes.len(), t.leaves.len());
        for _ in 0..3 {
            for i in 0..1000u32 {
                t.remove(0x0a00_0000 | i << 8 | 0x80, 25).unwrap();
                t.insert(0x0a00_0000 | i << 8 | 0x80, 25, i + 2).unwrap();
            }
        }
        assert!(t.nodes.len() <= nodes + 64 && t.leaves.len() <= leaves + 64);
        for i in 0..1000u32 {
            t.remove(0x0a00_0000 | i << 8, 24).unwrap();
            t.remove(0x0a00_0000 | i << 8 | 0x80, 25).unwrap();
        }
        assert!(t.is_empty());
        assert_eq!((t.used_nodes, t.used_leaves), (0, 0));
        assert_eq!(t.lookup(0x0a00_0105), None);
        assert!(t.direct.iter().all(|&d| d == LEAF | NO_ROUTE));
    }

    #[test]
    fn bad_routes_are_refused_and_the_limit_holds() {
        let mut t = Poptrie::<u32>::with_max_routes(2);
        assert_eq!(t.insert(0, 33, 1), Err(LpmError::BadLength(33, 32)));
        assert_eq!(
            t.insert(0, 8, MAX_VALUE + 1),
            Err(LpmError::BadValue(MAX_VALUE + 1))
        );
        t.insert(0x0a00_0000, 8, 1).unwrap();
        t.insert(0x0b00_0000, 8, 1).unwrap();
        assert_eq!(t.insert(0x0c00_0000, 8, 1), Err(LpmError::Full(2)));
        // Replacing a route is no new route.
        assert_eq!(t.insert(0x0a00_0000, 8, 2), Ok(Some(1)));
        assert_eq!(t.remove(0x0c00_0000, 8), None);
        assert_eq!(t.matching(0x0a01_0203), Some((0x0a00_0000, 8, 2)));
    }
}

//! The routes as a binary trie: one node per bit of a prefix, a route on
//! the node its last bit leads to. Simple on purpose: it is the source of
//! truth that the lookup structure is compiled from, what `route show`
//! lists, and the reference the property tests hold that structure to.

use super::Key;
use std::marker::PhantomData;

/// No route (as a value), no node (as an index).
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    child: [u32; 2],
    value: u32,
}

const EMPTY: Node = Node {
    child: [NONE; 2],
    value: NONE,
};

/// Depth of the nodes that `Rib::jump` points at.
const JUMP: u32 = 16;

/// Routes (prefix, length) -> value, for keys of type `K`.
#[derive(Debug, Clone)]
pub struct Rib<K: Key> {
    /// Node 0 is the root (the /0 route's node); it is never freed.
    nodes: Vec<Node>,
    free: Vec<u32>,
    /// The node at depth [`JUMP`] on the path of each value of a key's top
    /// 16 bits ([`NONE`] if none): adding or removing a route of 16 bits or
    /// more starts there, not at the root, 16 dependent loads fewer.
    jump: Vec<u32>,
    len: usize,
    key: PhantomData<K>,
}

impl<K: Key> Default for Rib<K> {
    fn default() -> Self {
        Rib::new()
    }
}

impl<K: Key> Rib<K> {
    pub fn new() -> Rib<K> {
        Rib {
            nodes: vec![EMPTY],
            free: Vec::new(),
            jump: vec![NONE; 1 << JUMP],
            len: 0,
            key: PhantomData,
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of its nodes.
    pub fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + (self.free.capacity() + self.jump.len()) * 4
    }

    /// The root node.
    pub fn root(&self) -> u32 {
        0
    }

    /// The child of node `n` on bit `b`, if any.
    #[inline]
    pub fn child(&self, n: u32, b: usize) -> Option<u32> {
        let c = self.nodes[n as usize].child[b];
        (c != NONE).then_some(c)
    }

    /// The route value on node `n` ([`NONE`] if none).
    #[inline]
    pub fn value(&self, n: u32) -> u32 {
        self.nodes[n as usize].value
    }

    /// Whether node `n` has a node below it (so a longer prefix).
    #[inline]
    pub fn has_children(&self, n: u32) -> bool {
        self.nodes[n as usize].child != [NONE; 2]
    }

    /// Adds or replaces `key/len -> value`; the value it replaced, if any.
    pub fn insert(&mut self, key: K, len: u8, value: u32) -> Option<u32> {
        let len = u32::from(len);
        let n = if len >= JUMP {
            let slot = jump_slot(key);
            if self.jump[slot] == NONE {
                self.jump[slot] = self.make_path(key, 0, 0, JUMP);
            }
            self.make_path(key, self.jump[slot], JUMP, len)
        } else {
            self.make_path(key, 0, 0, len)
        };
        let old = std::mem::replace(&mut self.nodes[n as usize].value, value);
        if old == NONE {
            self.len += 1;
            None
        } else {
            Some(old)
        }
    }

    /// Removes `key/len`; its value, if it was there. Nodes left with no
    /// route at or below them go.
    pub fn remove(&mut self, key: K, len: u8) -> Option<u32> {
        // path[i]: the node at depth i (from JUMP down if it starts there).
        let mut path = [0u32; 129];
        let len = u32::from(len);
        let start = if len >= JUMP {
            path[JUMP as usize] = self.jump[jump_slot(key)];
            if path[JUMP as usize] == NONE {
                return None;
            }
            JUMP
        } else {
            0
        };
        let mut n = path[start as usize];
        for i in start..len {
            n = self.child(n, key.bit(i))?;
            path[i as usize + 1] = n;
        }
        let old = std::mem::replace(&mut self.nodes[n as usize].value, NONE);
        if old == NONE {
            return None;
        }
        self.len -= 1;
        // Prune upwards.
        let mut depth = len;
        while depth > 0 && self.value(n) == NONE && !self.has_children(n) {
            if depth == JUMP {
                self.jump[jump_slot(key)] = NONE;
                if start == JUMP {
                    // The nodes above were skipped: find them.
                    for i in 0..JUMP {
                        path[i as usize + 1] =
                            self.nodes[path[i as usize] as usize].child[key.bit(i)];
                    }
                }
            }
            let parent = path[depth as usize - 1];
            self.nodes[parent as usize].child[key.bit(depth - 1)] = NONE;
            self.free.push(n);
            n = parent;
            depth -= 1;
        }
        Some(old)
    }

    /// The value of exactly `key/len`.
    pub fn get(&self, key: K, len: u8) -> Option<u32> {
        let mut n = 0u32;
        for i in 0..u32::from(len) {
            n = self.child(n, key.bit(i))?;
        }
        let v = self.value(n);
        (v != NONE).then_some(v)
    }

    /// The longest route that matches `key`: (length, value).
    pub fn lookup(&self, key: K) -> Option<(u8, u32)> {
        let mut best = None;
        let mut n = 0u32;
        let mut depth = 0u32;
        loop {
            let v = self.value(n);
            if v != NONE {
                best = Some((depth as u8, v));
            }
            if depth == K::BITS {
                return best;
            }
            match self.child(n, key.bit(depth)) {
                Some(c) => n = c,
                None => return best,
            }
            depth += 1;
        }
    }

    /// The node `depth` bits down the path of `key` (`None` if the trie
    /// stops before), and the value of the longest route on the way, that
    /// node's own included ([`NONE`] if none).
    pub fn descend(&self, key: K, depth: u32) -> (Option<u32>, u32) {
        let mut n = 0u32;
        let mut best = self.value(0);
        for i in 0..depth {
            match self.child(n, key.bit(i)) {
                Some(c) => n = c,
                None => return (None, best),
            }
            let v = self.value(n);
            if v != NONE {
                best = v;
            }
        }
        (Some(n), best)
    }

    /// From node `n` at `depth` bits, `steps` bits further down the path of
    /// `key`, as [`Rib::descend`] does from the root; `best` is the longest
    /// route on or above `n`.
    pub fn descend_from(
        &self,
        n: u32,
        key: K,
        depth: u32,
        steps: u32,
        best: u32,
    ) -> (Option<u32>, u32) {
        let (mut n, mut best) = (n, best);
        for i in depth..(depth + steps).min(K::BITS) {
            match self.child(n, key.bit(i)) {
                Some(c) => n = c,
                None => return (None, best),
            }
            let v = self.value(n);
            if v != NONE {
                best = v;
            }
        }
        if depth + steps > K::BITS {
            // Past the last bit, no node.
            return (None, best);
        }
        (Some(n), best)
    }

    /// Every route: (prefix, length, value), in prefix order, a prefix
    /// before those it covers.
    pub fn iter(&self) -> impl Iterator<Item = (K, u8, u32)> + '_ {
        let mut stack = vec![(0u32, K::default(), 0u8)];
        std::iter::from_fn(move || {
            while let Some((n, key, depth)) = stack.pop() {
                let node = &self.nodes[n as usize];
                if node.child[1] != NONE {
                    stack.push((node.child[1], key.with_bit(u32::from(depth)), depth + 1));
                }
                if node.child[0] != NONE {
                    stack.push((node.child[0], key, depth + 1));
                }
                if node.value != NONE {
                    return Some((key, depth, node.value));
                }
            }
            None
        })
    }

    /// The node `to` bits down the path of `key` from node `n` at depth
    /// `from`, made where missing.
    fn make_path(&mut self, key: K, mut n: u32, from: u32, to: u32) -> u32 {
        for i in from..to {
            let b = key.bit(i);
            n = match self.child(n, b) {
                Some(c) => c,
                None => {
                    let c = self.alloc();
                    self.nodes[n as usize].child[b] = c;
                    c
                }
            };
        }
        n
    }

    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = EMPTY;
                i
            }
            None => {
                self.nodes.push(EMPTY);
                (self.nodes.len() - 1) as u32
            }
        }
    }
}

/// The index of `key`'s node at depth [`JUMP`] in `Rib::jump`.
#[inline]
fn jump_slot<K: Key>(key: K) -> usize {
    key.direct() >> (K::DIRECT_BITS - JUMP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_below_the_jump_depth_come_and_go_and_leave_no_node() {
        let mut r = Rib::<u32>::new();
        // 10.1.0.0/16 is at the jump depth; a /24 below it, a /8 above.
        assert_eq!(r.insert(0x0a01_0200, 24, 1), None);
        assert_eq!(r.insert(0x0a01_0000, 16, 2), None);
        assert_eq!(r.insert(0x0a00_0000, 8, 3), None);
        assert_eq!(r.insert(0x0a01_0200, 24, 4), Some(1));
        assert_eq!(r.lookup(0x0a01_0201), Some((24, 4)));
        assert_eq!(r.remove(0x0a01_0200, 24), Some(4));
        assert_eq!(r.remove(0x0a01_0200, 24), None);
        assert_eq!(r.lookup(0x0a01_0201), Some((16, 2)));
        // The /16's node goes with its route, and the nodes up to the /8.
        assert_eq!(r.remove(0x0a01_0000, 16), Some(2));
        assert_eq!(r.jump[jump_slot(0x0a01_0000u32)], NONE);
        assert_eq!(r.lookup(0x0a01_0201), Some((8, 3)));
        assert_eq!(r.remove(0x0a01_0000, 16), None);
        assert_eq!(r.remove(0x0a01_0000, 24), None);
        // Back again, through a jump entry made anew.
        assert_eq!(r.insert(0x0a01_0280, 25, 5), None);
        assert_eq!(r.lookup(0x0a01_0281), Some((25, 5)));
        assert_eq!(r.remove(0x0a01_0280, 25), Some(5));
        assert_eq!(r.remove(0x0a00_0000, 8), Some(3));
        assert!(r.is_empty());
        // Every node but the root is free.
        assert_eq!(r.free.len(), r.nodes.len() - 1);
        assert!(r.jump.iter().all(|&j| j == NONE));
    }
}

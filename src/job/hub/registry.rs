//! [`Registry`]: values shared by key and counted by holder, the last holder ending them.
//!
//! The fan-out targets of one job file share one source hub: the first target to start
//! makes it, the others join it, and the last one to stop takes it out of the registry to
//! end it. Which targets may share is the key's equality; a value is made under the
//! registry's lock, so two targets starting at once never make two. Ending the value is
//! the caller's (outside the lock): a hub being stopped must not keep other jobs from
//! starting or stopping. A value that ended by itself (a hub whose thread died) is
//! [`retire`](Registry::retire)d: it must not be handed to the next holder, who would
//! wait on it for ever.

use std::sync::{Arc, Mutex};

pub struct Registry<K, V> {
    entries: Mutex<Vec<Entry<K, V>>>,
}

struct Entry<K, V> {
    key: K,
    value: Arc<V>,
    holders: usize,
}

impl<K: PartialEq, V> Registry<K, V> {
    pub const fn new() -> Registry<K, V> {
        Registry {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The value held under `key`, or a new one from `make` (an error leaves the registry
    /// as it was); either way with one holder more.
    pub fn join<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<Arc<V>, E> {
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            e.holders += 1;
            return Ok(e.value.clone());
        }
        let value = Arc::new(make()?);
        entries.push(Entry {
            key,
            value: value.clone(),
            holders: 1,
        });
        Ok(value)
    }

    /// One holder of `value` less: the value itself when that was the last one (it is out
    /// of the registry now, and the next `join` with its key makes a new one).
    pub fn leave(&self, value: &Arc<V>) -> Option<Arc<V>> {
        let mut entries = self.lock();
        let i = entries.iter().position(|e| Arc::ptr_eq(&e.value, value))?;
        entries[i].holders -= 1;
        (entries[i].holders == 0).then(|| entries.swap_remove(i).value)
    }

    /// Takes the value that `which` picks out of the registry, however many hold it: the
    /// next `join` with its key makes a new one, and its holders' `leave` returns `None`
    /// (it is no longer theirs to end). False when no value is picked.
    pub fn retire(&self, which: impl Fn(&V) -> bool) -> bool {
        let mut entries = self.lock();
        let Some(i) = entries.iter().position(|e| which(&e.value)) else {
            return false;
        };
        entries.swap_remove(i);
        true
    }

    /// How many values are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry<K, V>>> {
        // The entries stay consistent whatever panicked while they were locked: every
        // change is a single push, increment or removal.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: u32) -> impl FnOnce() -> Result<u32, ()> {
        move || Ok(v)
    }

    #[test]
    fn holders_of_one_key_share_one_value_until_the_last_leaves() {
        let r: Registry<&str, u32> = Registry::new();
        let a = r.join("web", ok(1)).unwrap();
        let b = r
            .join("web", || -> Result<u32, ()> { panic!("made twice") })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(r.len(), 1);
        assert!(r.leave(&a).is_none(), "one holder is left");
        let last = r.leave(&b).expect("the last holder ends it");
        assert!(Arc::ptr_eq(&last, &a));
        assert_eq!(r.len(), 0);
        // The key is free again: a new holder makes a new value.
        let c = r.join("web", ok(2)).unwrap();
        assert_eq!(*c, 2);
        assert!(!Arc::ptr_eq(&c, &a));
    }

    #[test]
    fn different_keys_hold_different_values() {
        let r: Registry<&str, u32> = Registry::new();
        let a = r.join("web", ok(1)).unwrap();
        let b = r.join("mail", ok(2)).unwrap();
        assert_eq!((*a, *b), (1, 2));
        assert!(r.leave(&a).is_some());
        assert_eq!(r.len(), 1);
        assert!(r.leave(&b).is_some());
    }

    #[test]
    fn a_failed_make_registers_nothing() {
        let r: Registry<&str, u32> = Registry::new();
        assert_eq!(r.join("web", || Err("no thread")), Err("no thread"));
        assert_eq!(r.len(), 0);
        assert_eq!(*r.join("web", ok(3)).unwrap(), 3);
    }

    #[test]
    fn a_retired_value_is_made_anew_and_its_holders_leave_it_alone() {
        let r: Registry<&str, u32> = Registry::new();
        let a = r.join("web", ok(1)).unwrap();
        let b = r.join("web", ok(9)).unwrap();
        assert!(!r.retire(|v| *v == 2), "nothing picked");
        assert!(r.retire(|v| *v == 1));
        let c = r.join("web", ok(2)).unwrap();
        assert_eq!(*c, 2, "a new value");
        assert!(r.leave(&a).is_none() && r.leave(&b).is_none());
        assert_eq!(r.len(), 1, "the new value is still held");
        assert!(r.leave(&c).is_some());
    }

    #[test]
    fn leaving_a_value_not_held_changes_nothing() {
        let r: Registry<&str, u32> = Registry::new();
        let a = r.join("web", ok(1)).unwrap();
        assert!(r.leave(&Arc::new(1)).is_none());
        assert_eq!(r.len(), 1);
        assert!(r.leave(&a).is_some());
    }
}

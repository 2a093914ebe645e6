//! The actions a rule permits or denies for an object: walk into it, watch it, sync it.
//!
//! Rules decide each action on its own, so actions are bits of a mask ([`ALL_ACTIONS`]).

use std::fmt;

/// The things a rule can permit or deny for an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Descend into a directory during tree walks.
    Walk,
    /// Place a watch on a directory.
    Monitor,
    /// Hand the object to the sync handler.
    Sync,
}

impl Action {
    /// All actions, in bit order.
    pub const ALL: [Action; 3] = [Action::Walk, Action::Monitor, Action::Sync];

    pub(super) fn bit(self) -> u8 {
        match self {
            Action::Walk => 1,
            Action::Monitor => 2,
            Action::Sync => 4,
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Action::Walk => 0,
            Action::Monitor => 1,
            Action::Sync => 2,
        }
    }

    /// Lower-case name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::Walk => "walk",
            Action::Monitor => "monitor",
            Action::Sync => "sync",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every action's bit.
pub(super) const ALL_ACTIONS: u8 = 7;

pub(super) fn mask_of(actions: &[Action]) -> u8 {
    actions.iter().fold(0, |m, a| m | a.bit())
}

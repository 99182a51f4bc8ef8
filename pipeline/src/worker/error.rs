//! Why a batch, or one message of it, was not stored, and whether redelivering it can help.

use crate::bus::BusError;
use crate::identities::IdentityError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The bytes are not an `Interaction` record that passes its contract.
    #[error("{0}")]
    Undecodable(String),
    /// The models failed on the batch (out of memory, a bug): retried, then dead-lettered.
    #[error("{0}")]
    Analysis(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl BatchError {
    /// False for input that will fail the same way on every delivery: it is dead-lettered
    /// at once instead of waiting out `max_deliver`.
    pub fn redelivery_can_help(&self) -> bool {
        !matches!(self, BatchError::Undecodable(_))
    }
}

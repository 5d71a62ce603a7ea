//! What an application keeps per mailbox, over the POP3 client: the
//! account settings ([`account`]), the incremental sync with its plan and
//! state ([`sync`]), where messages are stored ([`store`]), and message
//! summaries ([`summary`]).

pub mod account;
pub mod store;
pub mod summary;
pub mod sync;

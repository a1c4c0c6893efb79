//! E-mail: what Parlo mails (`compose.rs`: account links, security notices, operator notices,
//! in English or German, text and HTML from the `parlo-site` templates), the durable outbox
//! with retries (`outbox.rs`: [`Mailer`]) and the hand-over to an SMTP server or, in
//! development, to `.eml` files (`transport.rs`). Must never log a message's content or a
//! link: a link may hold a single-use token.

mod compose;
mod outbox;
mod transport;

pub use compose::{Mail, SecurityEvent, compose};
pub use outbox::{DrainReport, MAX_ATTEMPTS, MailError, Mailer};
pub use transport::{DeliveryError, Transport};

//! The metadata of the trusted-metadata mode (tests and local development), re-exported for
//! clients; who is calling is established by `motcua_auth::Authenticator`.

pub use motcua_auth::authenticator::{OFFICER_HEADER, ROLE_HEADER, UNIT_HEADER};

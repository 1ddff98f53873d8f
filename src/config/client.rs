//! The API client's options are the validated `[cloudflare]` section itself
//! ([`CloudflareSettings`]): declared once, with the one default table of
//! [`RawCloudflare`](super::raw::RawCloudflare)'s `Default`. Here rather than in the client so
//! that configuration depends on nothing internal.

use url::Url;

use super::{CloudflareSettings, Credentials, Sourced};
use crate::secret::Secret;

/// What the API client is built from: the validated `[cloudflare]` section.
pub type ClientOptions = CloudflareSettings;

/// How requests authenticate: credentials given in code (inline, no file or variable).
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (the token needs "SSL and Certificates Read").
    Token(Secret),
    /// Legacy `X-Auth-Email` + `X-Auth-Key`.
    Legacy { email: String, key: Secret },
}

impl From<Auth> for Credentials {
    fn from(auth: Auth) -> Self {
        match auth {
            Auth::Token(token) => Credentials::Token(Sourced::inline(token)),
            Auth::Legacy { email, key } => Credentials::Legacy {
                email: Sourced::inline(email),
                key: Sourced::inline(key),
            },
        }
    }
}

impl CloudflareSettings {
    /// The documented defaults for the given API root and credentials.
    pub fn new(api_base_url: Url, auth: Auth) -> Self {
        CloudflareSettings::with_defaults(api_base_url, auth.into())
    }

    /// The credentials' values, as requests send them.
    pub fn auth(&self) -> Auth {
        match &self.credentials {
            Credentials::Token(token) => Auth::Token(token.value.clone()),
            Credentials::Legacy { email, key } => Auth::Legacy {
                email: email.value.clone(),
                key: key.value.clone(),
            },
        }
    }
}

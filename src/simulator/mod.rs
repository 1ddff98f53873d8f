//! The Cloudflare API simulator (being written).

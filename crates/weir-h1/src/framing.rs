//! Content-Length and Transfer-Encoding rules (RFC 9112 §6).

//! The error every core operation returns, shared by REST, server functions and the CLI.
//! Each variant's doc names the status the web layer answers with; the core itself knows
//! no HTTP.

/// What went wrong in a core operation. The REST layer maps each variant to one status.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// 422: a field of the input is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// 404: the thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the request contradicts what is stored (a known endpoint with other keys).
    #[error("{field}: {reason}")]
    Conflict { field: &'static str, reason: String },
    /// 429: too many requests of this kind from this client; `retry_after` says when to
    /// try again.
    #[error("too many {what}; try again in {} s", retry_after.as_secs())]
    RateLimited { what: String, retry_after: std::time::Duration },
    /// 429: this address already created CLARION_MAX_SUBSCRIPTIONS_PER_IP subscriptions.
    #[error("this address has created as many subscriptions as it may (CLARION_MAX_SUBSCRIPTIONS_PER_IP)")]
    TooManyFromAddress,
    /// 503: CLARION_MAX_SUBSCRIPTIONS is reached.
    #[error("this server stores no more subscriptions (CLARION_MAX_SUBSCRIPTIONS)")]
    Full,
    /// 500: a bug or an unavailable database; details are logged, never returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<clarion_domain::subscription::FieldError> for CoreError {
    fn from(e: clarion_domain::subscription::FieldError) -> Self {
        CoreError::Invalid { field: e.field, reason: e.reason }
    }
}

impl From<clarion_domain::notification::NotificationError> for CoreError {
    fn from(e: clarion_domain::notification::NotificationError) -> Self {
        CoreError::Invalid { field: e.field, reason: e.reason }
    }
}

impl CoreError {
    /// The message safe to show to a client: internal details are replaced.
    pub fn public_message(&self) -> String {
        match self {
            CoreError::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }
}

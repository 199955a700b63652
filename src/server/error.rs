//! The error every core operation returns, shared by REST, server functions and the CLI.

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
    /// 500: a bug or an unavailable database; details are logged, never returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::domain::subscription::FieldError> for CoreError {
    fn from(e: crate::domain::subscription::FieldError) -> Self {
        CoreError::Invalid { field: e.field, reason: e.reason }
    }
}

impl From<crate::domain::notification::NotificationError> for CoreError {
    fn from(e: crate::domain::notification::NotificationError) -> Self {
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

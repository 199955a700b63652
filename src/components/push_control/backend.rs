//! How the push control reaches Clarion: through the page's server functions on
//! Clarion's own page, or through the public REST API at Clarion's origin from any other
//! site (the SDK). Both end in the same core operations on the server.

use crate::browser::BrowserError;
use crate::domain::{SavedSubscription, SubscriptionJson, TestPushResult, Topic};

/// Where the control's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Clarion's own page: the server functions under `/api/fn`.
    #[cfg(feature = "hydrate")]
    ServerFunctions,
    /// Another site's page: `/api/v1` at Clarion's origin (`https://push.example.com`),
    /// which answers the sites listed in `CLARION_CORS_ORIGINS`.
    #[cfg(feature = "sdk")]
    Rest { origin: String },
}

type Result<T> = std::result::Result<T, BrowserError>;

impl Backend {
    /// Clarion's VAPID public key, base64url.
    pub async fn vapid_public_key(&self) -> Result<String> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::vapid_public_key().await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { origin } => {
                #[derive(serde::Deserialize)]
                struct Key {
                    public_key: String,
                }
                Ok(rest::call::<Key>(origin, rest::Method::Get, "/vapid-public-key", rest::NO_BODY).await?.public_key)
            }
        }
    }

    /// The topics the site offers.
    pub async fn topics(&self) -> Result<Vec<Topic>> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::topics().await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { origin } => {
                #[derive(serde::Deserialize)]
                struct Topics {
                    topics: Vec<Topic>,
                }
                Ok(rest::call::<Topics>(origin, rest::Method::Get, "/topics", rest::NO_BODY).await?.topics)
            }
        }
    }

    /// Stores (or refreshes) a subscription.
    pub async fn save(
        &self,
        subscription: SubscriptionJson,
        topics: Option<Vec<String>>,
        user_token: Option<String>,
    ) -> Result<SavedSubscription> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::save_subscription(subscription, topics, user_token).await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { origin } => {
                let request = crate::domain::SubscribeRequest {
                    topics,
                    user_token,
                    ..crate::domain::SubscribeRequest::from_subscription(subscription)
                };
                rest::call(origin, rest::Method::Post, "/subscriptions", Some(&request)).await
            }
        }
    }

    /// Replaces a subscription's topics, proving it is ours with its `auth` secret.
    pub async fn save_topics(&self, endpoint: String, auth: String, topics: Vec<String>) -> Result<Vec<String>> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::save_topics(endpoint, auth, topics).await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { origin } => {
                #[derive(serde::Deserialize)]
                struct Chosen {
                    topics: Vec<String>,
                }
                let body = rest::Owned { endpoint: &endpoint, auth: &auth, topics: Some(&topics) };
                Ok(rest::call::<Chosen>(origin, rest::Method::Put, "/subscriptions/topics", Some(&body)).await?.topics)
            }
        }
    }

    /// Deletes a subscription; one Clarion does not have is not an error.
    pub async fn delete(&self, endpoint: String) -> Result<()> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => crate::api::delete_subscription(endpoint).await.map(|_| ()).map_err(BrowserError::from),
            #[cfg(feature = "sdk")]
            Backend::Rest { origin } => {
                #[derive(serde::Serialize)]
                struct Endpoint {
                    endpoint: String,
                }
                rest::send(origin, rest::Method::Delete, "/subscriptions", Some(&Endpoint { endpoint }), &[404]).await.map(|_| ())
            }
        }
    }

    /// Pushes a test notification to one's own subscription.
    pub async fn send_test(&self, endpoint: String, auth: String) -> Result<TestPushResult> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::send_test_notification(endpoint, auth).await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { origin } => {
                let body = rest::Owned { endpoint: &endpoint, auth: &auth, topics: None };
                rest::call(origin, rest::Method::Post, "/subscriptions/test", Some(&body)).await
            }
        }
    }
}

#[cfg(feature = "hydrate")]
impl From<leptos::server_fn::error::ServerFnError> for BrowserError {
    fn from(e: leptos::server_fn::error::ServerFnError) -> Self {
        use leptos::server_fn::error::ServerFnError;
        BrowserError(match e {
            ServerFnError::ServerError(message) => message,
            other => other.to_string(),
        })
    }
}

#[cfg(feature = "sdk")]
mod rest {
    //! Calls to Clarion's REST API from another site's page: no cookies, JSON both ways
    //! (through the browser's own `JSON`), and Clarion's own words when it refuses.

    use crate::browser::{self, BrowserError};
    use gloo_net::http::{RequestBuilder, Response};
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use web_sys::RequestCredentials;

    pub enum Method {
        Get,
        Post,
        Put,
        Delete,
    }

    /// A subscription named by its endpoint and proven by its `auth` secret.
    #[derive(Serialize)]
    pub struct Owned<'a> {
        pub endpoint: &'a str,
        pub auth: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub topics: Option<&'a [String]>,
    }

    /// For a call without a body.
    pub const NO_BODY: Option<&()> = None;

    /// Calls `path` under `/api/v1` and reads the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        origin: &str,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, BrowserError> {
        let response = send(origin, method, path, body, &[]).await?;
        json(&response).await.map_err(|e| BrowserError(format!("Clarion's answer to {path} was not what the SDK expects: {e}")))
    }

    async fn json<T: DeserializeOwned>(response: &Response) -> Result<T, BrowserError> {
        let text = response.text().await.map_err(|e| BrowserError(e.to_string()))?;
        browser::from_js(js_sys::JSON::parse(&text)?)
    }

    /// Calls `path` under `/api/v1`; a status outside 2xx and `accepted` is an error in
    /// Clarion's words.
    pub async fn send(
        origin: &str,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        accepted: &[u16],
    ) -> Result<Response, BrowserError> {
        let url = format!("{origin}/api/v1{path}");
        let method = match method {
            Method::Get => gloo_net::http::Method::GET,
            Method::Post => gloo_net::http::Method::POST,
            Method::Put => gloo_net::http::Method::PUT,
            Method::Delete => gloo_net::http::Method::DELETE,
        };
        let builder = RequestBuilder::new(&url).method(method).credentials(RequestCredentials::Omit);
        let request = match body {
            Some(body) => builder.header("Content-Type", "application/json").body(browser::json_text(body, 0)?),
            None => builder.build(),
        }
        .map_err(|e| BrowserError(e.to_string()))?;
        let response = request.send().await.map_err(|e| unreachable(origin, e))?;
        if response.ok() || accepted.contains(&response.status()) {
            return Ok(response);
        }
        #[derive(serde::Deserialize)]
        struct Refusal {
            error: String,
        }
        let status = response.status();
        let reason = json::<Refusal>(&response).await.map(|r| r.error).unwrap_or_else(|_| response.status_text());
        Err(BrowserError(format!("Clarion refused ({status}): {reason}")))
    }

    /// A request the browser could not complete: Clarion is down, or (the usual cause on
    /// a new site) it does not grant this site CORS.
    fn unreachable(origin: &str, e: gloo_net::Error) -> BrowserError {
        let site = web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default();
        BrowserError(format!(
            "could not reach Clarion at {origin} ({e}). Check that it is running and that its CLARION_CORS_ORIGINS lists this site, {site}"
        ))
    }
}
